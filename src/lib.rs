//! Veza: a self-hosted audio streaming origin built to sit behind a CDN.
//! See docs/ARCHITECTURE.md for the module map and the life of a request.
#![forbid(unsafe_code)]

pub mod accounts;
pub mod app;
pub mod backup;
pub mod cache;
pub mod cli;
pub mod clock;
pub mod config;
pub mod datadir;
pub mod db;
pub mod encoding;
pub mod hls;
pub mod http;
pub mod jobs;
pub mod library;
pub mod metrics;
pub mod ratelimit;
pub mod rum;
pub mod signing;
pub mod storage;
pub mod subsonic;
pub mod systemd;
pub mod telemetry;
pub mod tracks;
pub mod version;

pub use app::App;
