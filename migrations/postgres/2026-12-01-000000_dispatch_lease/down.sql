ALTER TABLE requests DROP COLUMN dispatch_lease_until;
