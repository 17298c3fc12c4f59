#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
pub mod flow;
pub mod phone;
pub mod privacy;
pub mod problem;
pub mod text;
