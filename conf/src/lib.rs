//! Miroir configuration.
