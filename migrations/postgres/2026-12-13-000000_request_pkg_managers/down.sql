DROP TRIGGER request_pkg_managers_fixed ON requests;
DROP FUNCTION request_pkg_managers_fixed();
DROP TRIGGER request_pkg_managers_added ON requests;
DROP FUNCTION request_pkg_managers_add();
DROP TABLE request_pkg_managers;
