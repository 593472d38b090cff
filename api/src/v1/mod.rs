pub mod files;
pub mod leases;
pub mod manifests;
pub mod requests;
pub mod status;
pub mod validation;
