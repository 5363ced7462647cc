//! `veza sign`: a signed URL from the command line.

use std::net::IpAddr;

use clap::Args;

use super::error::CliError;
use crate::config::{self, CdnProvider};
use crate::metrics::Metrics;
use crate::signing::{self, CdnService, SignRequest, SigningError};
use crate::{telemetry, version};

/// `veza sign …`: the interface scripts and runbooks rely on (issue 5).
#[derive(Debug, Args)]
pub struct SignArgs {
    /// Provider (default: cdn.provider when cdn.enabled, else local); cdn.fallback still applies.
    #[arg(long, value_parser = clap::builder::PossibleValuesParser::new(["bunny", "s3", "local", "cloudfront", "nginx", "cloudflare"]))]
    pub provider: Option<String>,
    /// Signing time: Unix seconds or YYYYMMDDTHHMMSSZ (default: now).
    #[arg(long, value_name = "UNIX_SECONDS|YYYYMMDDTHHMMSSZ", value_parser = parse_now)]
    pub now: Option<u64>,
    /// Lifetime in seconds (default: cdn.ttl_secs).
    #[arg(long, value_name = "SECONDS", conflicts_with = "expires")]
    pub ttl: Option<u64>,
    /// Absolute expiry, Unix seconds.
    #[arg(long, value_name = "UNIX_SECONDS")]
    pub expires: Option<u64>,
    /// Directory the token covers (Bunny, local), e.g. /tracks/7f3a9c/hls/.
    #[arg(long, value_name = "PATH")]
    pub token_path: Option<String>,
    /// Bunny path form (/bcdn_token=…/path).
    #[arg(long, conflicts_with = "query_form")]
    pub path_form: bool,
    /// Bunny query form (?token=…&expires=…).
    #[arg(long)]
    pub query_form: bool,
    /// Bind the URL to this viewer address.
    #[arg(long, value_name = "ADDR")]
    pub ip: Option<IpAddr>,
    /// Allowed countries (Bunny token_countries).
    #[arg(long, value_name = "CC,CC")]
    pub countries: Option<String>,
    /// Blocked countries (Bunny token_countries_blocked).
    #[arg(long, value_name = "CC,CC")]
    pub countries_blocked: Option<String>,
    /// Speed limit in kB/s (Bunny limit; 0 = none).
    #[arg(long, value_name = "KBPS")]
    pub speed_limit: Option<u64>,
    /// Bunny token_ignore_params=true (players may add query parameters).
    #[arg(long)]
    pub ignore_params: bool,
    /// Extra signed query parameter; repeatable.
    #[arg(long = "query", value_name = "K=V")]
    pub query: Vec<String>,
    /// Print {"url","expires_at","provider","fallback"} instead of the bare URL.
    #[arg(long)]
    pub json: bool,
    /// Decoded object path (/tracks/7f3a9c/original.flac); for S3 the object key.
    #[arg(value_name = "OBJECT_PATH")]
    pub object_path: String,
}

fn parse_now(s: &str) -> Result<u64, String> {
    signing::parse_time(s)
        .ok_or_else(|| format!("{s:?} is neither Unix seconds nor YYYYMMDDTHHMMSSZ"))
}

/// `veza sign`: config and flags into one [`SignRequest`], through the same fallback chain as
/// the server. Touches no database; the local provider may create its key file.
pub(super) fn sign(cfg: &config::Config, args: SignArgs) -> Result<(), CliError> {
    // Fallback warnings go to stderr; stdout carries only the URL.
    telemetry::init(&cfg.log, std::io::stderr);
    let bad = CliError::SignInput;
    let primary = match &args.provider {
        Some(name) => {
            CdnProvider::parse(name).ok_or_else(|| bad(format!("unknown provider {name:?}")))?
        }
        None if cfg.cdn.enabled => cfg.cdn.provider,
        None => CdnProvider::Local,
    };
    let now = match args.now {
        Some(n) => n,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_err(|_| bad("the system clock is before 1970".into()))?
            .as_secs(),
    };
    let mut query = Vec::with_capacity(args.query.len());
    for kv in &args.query {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| bad(format!("--query {kv:?} is not K=V")))?;
        query.push((k.to_owned(), v.to_owned()));
    }
    let list = |s: &Option<String>| -> Option<Vec<String>> {
        s.as_ref().map(|s| {
            s.split(',')
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect()
        })
    };
    let path = if args.object_path.starts_with('/') {
        args.object_path.clone()
    } else {
        format!("/{}", args.object_path)
    };
    let req = SignRequest {
        path,
        now,
        expires: args.expires,
        ttl: args.ttl,
        token_path: args.token_path.clone(),
        path_form: match (args.path_form, args.query_form) {
            (true, _) => Some(true),
            (_, true) => Some(false),
            _ => None,
        },
        ip: args.ip,
        countries_allowed: list(&args.countries),
        countries_blocked: list(&args.countries_blocked),
        speed_limit_kbps: args.speed_limit,
        ignore_params: args.ignore_params,
        query,
    };
    let metrics = Metrics::new(version::VERSION, version::COMMIT)
        .map_err(|e| CliError::Io(std::io::Error::other(e.to_string())))?;
    let service = CdnService::with_primary(cfg, &metrics, primary);
    let signed = service.sign(&req).map_err(|e| match e {
        SigningError::BadInput(m) => CliError::SignInput(m),
        other => CliError::Sign(other),
    })?;
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&signed).expect("a SignedUrl serialises")
        );
    } else {
        println!("{}", signed.url);
    }
    Ok(())
}
