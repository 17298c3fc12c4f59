#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
pub mod app;
pub mod case;
pub mod cli;
pub mod channel;
pub mod clock;
pub mod config;
pub mod conversation;
pub mod flow;
pub mod metrics;
pub mod phone;
pub mod privacy;
pub mod store;
pub mod problem;
pub mod server;
pub mod text;
