pub mod files;
pub mod manifests;
pub mod requests;
pub mod status;
pub mod validation;
