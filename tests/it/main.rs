//! Integration tests: one binary (one link step), one module per area.
mod accounts;
mod cli;
mod deps;
mod docs;
mod helpers;
mod hls;
mod hostile;
mod hostile_media;
mod http;
mod library;
mod media;
mod observability;
mod schemathesis;
mod shutdown;
mod signing;
mod storage;
mod takedown;
