pub mod files;
pub mod requests;
pub mod status;
pub mod validation;
