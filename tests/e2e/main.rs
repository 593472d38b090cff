//! Larder end to end: the real `larder` binary against the real PostgreSQL and RabbitMQ, fixture
//! upstreams on loopback, and the real clients (npm, pip, cargo, go). One module per package
//! manager or concern; `cargo test --test e2e <module>::` runs one of them.

mod support;

mod air_gap;
mod cargo;
mod embedded;
mod fetch_deps;
mod gomod;
mod hostile_api;
mod hostile_lockfiles;
mod hostile_net;
mod https_repos;
mod large_files;
mod load;
mod metrics;
mod npm;
mod object_store;
mod openapi;
mod pip;
mod pnpm;
mod reliability;
mod requests;
mod rubygems;
mod scale_out;
mod search;
mod single_flight;
mod store_integrity;
mod tls;
mod ui;
mod validation;
mod yarn;
mod yarn_berry;
