//! Running Miroir: the admin API under `/_miroir/`, its page (`ui`) and configuration hot
//! reload.

pub mod admin;
pub mod aliases;
pub mod reload;
pub mod reshards;
pub mod ui;
