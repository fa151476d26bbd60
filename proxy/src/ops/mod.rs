//! Running Miroir: the admin API under `/_miroir/` and configuration hot reload.

pub mod admin;
pub mod reload;
