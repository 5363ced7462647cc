//! The fallback chain: `cdn.provider`, then each of `cdn.fallback`, built lazily, each attempt
//! counted, a panicking provider skipped.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use prometheus::IntCounterVec;

use crate::config::{CdnProvider, Config};
use crate::metrics::Metrics;

use super::*;

type Built = Result<Arc<dyn Signer>, SigningError>;

struct Slot {
    provider: CdnProvider,
    // Built on first use: `veza sign --provider bunny` must not create a local key file it
    // never needs, and a broken provider is diagnosed once, not per URL.
    signer: OnceLock<Built>,
}

/// The signing service: a primary provider and its fallbacks, always built; [`Self::is_enabled`]
/// says whether URLs go to a CDN at all.
pub struct CdnService {
    enabled: bool,
    config: Option<Arc<Config>>,
    chain: Vec<Slot>,
    local: OnceLock<Result<Arc<LocalSigner>, SigningError>>,
    counter: IntCounterVec,
    last_warned: Mutex<HashMap<CdnProvider, Instant>>,
}

impl CdnService {
    /// The app's service: `cdn.provider` first when `cdn.enabled`, else `local`; then
    /// `cdn.fallback` in order.
    pub fn new(cfg: &Config, metrics: &Metrics) -> Self {
        let primary = if cfg.cdn.enabled {
            cfg.cdn.provider
        } else {
            CdnProvider::Local
        };
        Self::with_primary(cfg, metrics, primary)
    }

    /// Like [`Self::new`] with another first provider (`veza sign --provider`).
    pub fn with_primary(cfg: &Config, metrics: &Metrics, primary: CdnProvider) -> Self {
        let mut order = vec![primary];
        for p in &cfg.cdn.fallback {
            if !order.contains(p) {
                order.push(*p);
            }
        }
        Self {
            enabled: cfg.cdn.enabled,
            config: Some(Arc::new(cfg.clone())),
            chain: order
                .into_iter()
                .map(|provider| Slot {
                    provider,
                    signer: OnceLock::new(),
                })
                .collect(),
            local: OnceLock::new(),
            counter: metrics.signing.clone(),
            last_warned: Mutex::new(HashMap::new()),
        }
    }

    /// A chain of ready signers, in order (tests and embedding).
    pub fn from_signers(enabled: bool, signers: Vec<Arc<dyn Signer>>, metrics: &Metrics) -> Self {
        Self {
            enabled,
            config: None,
            chain: signers
                .into_iter()
                .map(|s| Slot {
                    provider: s.provider(),
                    signer: OnceLock::from(Ok(s)),
                })
                .collect(),
            local: OnceLock::new(),
            counter: metrics.signing.clone(),
            last_warned: Mutex::new(HashMap::new()),
        }
    }

    /// Whether URLs are signed for a CDN (`cdn.enabled`); otherwise the chain starts at `local`.
    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The providers tried, in order.
    pub fn chain(&self) -> Vec<CdnProvider> {
        self.chain.iter().map(|s| s.provider).collect()
    }

    /// Builds every signer of the chain now and returns the ones that cannot sign, so start-up
    /// can report a broken provider before the first player asks.
    pub fn warm(&self) -> Vec<(CdnProvider, SigningError)> {
        self.chain
            .iter()
            .filter_map(|slot| match self.signer(slot) {
                Ok(_) => None,
                Err(e) => Some((slot.provider, e.clone())),
            })
            .collect()
    }

    /// The local signer, also used by the origin to verify `/media/` tokens.
    pub fn local(&self) -> Result<Arc<LocalSigner>, SigningError> {
        self.local
            .get_or_init(|| match &self.config {
                Some(cfg) => guard(CdnProvider::Local, || LocalSigner::from_config(cfg))
                    .and_then(|r| r)
                    .map(Arc::new),
                None => Err(SigningError::Misconfigured {
                    provider: CdnProvider::Local,
                    what: "no configuration".into(),
                }),
            })
            .clone()
    }

    fn signer<'a>(&'a self, slot: &'a Slot) -> &'a Built {
        slot.signer.get_or_init(|| {
            let Some(cfg) = &self.config else {
                return Err(SigningError::Misconfigured {
                    provider: slot.provider,
                    what: "no configuration".into(),
                });
            };
            let built = guard(slot.provider, || -> Built {
                Ok(match slot.provider {
                    CdnProvider::Bunny => Arc::new(BunnySigner::from_config(cfg)?),
                    CdnProvider::S3 => Arc::new(S3Signer::from_config(cfg)?),
                    CdnProvider::Local => self.local()?,
                    CdnProvider::Cloudfront => Arc::new(CloudFrontSigner::from_config(cfg)?),
                    CdnProvider::Nginx => Arc::new(NginxSigner::from_config(cfg)?),
                    CdnProvider::Cloudflare => Arc::new(CloudflareSigner::from_config(cfg)?),
                })
            });
            built.and_then(|r| r)
        })
    }

    /// Signs with the first provider that can; later ones only when earlier ones fail.
    /// A bad request is returned at once: no provider would sign it better.
    pub fn sign(&self, req: &SignRequest) -> Result<SignedUrl, SigningError> {
        self.sign_chain(req, false)
    }

    /// Like [`Self::sign`] for a whole directory (an HLS tree): `req.token_path` is required,
    /// and providers whose URLs cannot cover a directory (S3, CloudFront, nginx, Cloudflare)
    /// are passed over, so the player never gets a master playlist whose segments 403.
    pub fn sign_directory(&self, req: &SignRequest) -> Result<SignedUrl, SigningError> {
        if req.token_path.is_none() {
            return Err(SigningError::bad("a directory URL needs token_path"));
        }
        self.sign_chain(req, true)
    }

    fn sign_chain(&self, req: &SignRequest, directory: bool) -> Result<SignedUrl, SigningError> {
        // Checked once up front, so a bad request is refused even when the provider that would
        // have noticed it is the broken one.
        req.validate()?;
        let mut failures = Vec::new();
        for (i, slot) in self.chain.iter().enumerate() {
            let outcome = match self.signer(slot) {
                Ok(signer) if directory && !signer.covers_directories() => {
                    Err(SigningError::Unsupported {
                        provider: slot.provider,
                        what: "its URLs cannot cover a directory (HLS tree)".into(),
                    })
                }
                Ok(signer) => guard(slot.provider, || signer.sign(req)).and_then(|r| r),
                Err(e) => Err(e.clone()),
            };
            match outcome {
                Ok(signed) => {
                    let fallback = i > 0;
                    let label = if fallback { "fallback" } else { "ok" };
                    self.count(slot.provider, label);
                    return Ok(SignedUrl {
                        url: signed.url,
                        expires_at: signed.expires_at,
                        provider: slot.provider,
                        fallback,
                    });
                }
                Err(e @ SigningError::BadInput(_)) => return Err(e),
                Err(e) => {
                    self.count(slot.provider, "error");
                    self.warn(slot.provider, &e);
                    failures.push(e.to_string());
                }
            }
        }
        Err(SigningError::AllFailed(failures.join("; ")))
    }

    fn count(&self, provider: CdnProvider, outcome: &str) {
        self.counter
            .with_label_values(&[provider.as_str(), outcome])
            .inc();
    }

    fn warn(&self, provider: CdnProvider, e: &SigningError) {
        let now = Instant::now();
        let mut last = self
            .last_warned
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let due = last
            .get(&provider)
            .is_none_or(|t| now.duration_since(*t) >= WARN_INTERVAL);
        if due {
            last.insert(provider, now);
            tracing::warn!(provider = provider.as_str(), error = %e, "signing provider failed; trying the next one (logged at most once a minute)");
        }
    }
}

/// Runs `f`, turning a panic into [`SigningError::Panicked`]: one provider's bug must not stop
/// playback.
fn guard<T>(provider: CdnProvider, f: impl FnOnce() -> T) -> Result<T, SigningError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| SigningError::Panicked { provider })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(CdnProvider, Result<Signed, SigningError>);
    impl Signer for Fixed {
        fn provider(&self) -> CdnProvider {
            self.0
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            self.1.clone()
        }
    }

    struct Panics;
    impl Signer for Panics {
        fn provider(&self) -> CdnProvider {
            CdnProvider::Cloudfront
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            panic!("provider bug")
        }
    }

    fn ok(p: CdnProvider) -> Arc<dyn Signer> {
        Arc::new(Fixed(
            p,
            Ok(Signed {
                url: format!("https://{p}.example/x"),
                expires_at: 7,
            }),
        ))
    }

    fn failing(p: CdnProvider) -> Arc<dyn Signer> {
        Arc::new(Fixed(
            p,
            Err(SigningError::Misconfigured {
                provider: p,
                what: "broken".into(),
            }),
        ))
    }

    fn count(m: &Metrics, p: &str, o: &str) -> u64 {
        m.signing.with_label_values(&[p, o]).get()
    }

    #[test]
    fn first_provider_signs_when_it_can() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![ok(CdnProvider::Bunny), ok(CdnProvider::Local)],
            &m,
        );
        let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::Bunny, false));
        assert_eq!(count(&m, "bunny", "ok"), 1);
        assert_eq!(count(&m, "local", "fallback"), 0);
    }

    #[test]
    fn a_broken_provider_falls_through_and_is_counted() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![
                failing(CdnProvider::Bunny),
                failing(CdnProvider::S3),
                ok(CdnProvider::Local),
            ],
            &m,
        );
        for _ in 0..3 {
            let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
            assert_eq!((u.provider, u.fallback), (CdnProvider::Local, true));
        }
        assert_eq!(count(&m, "bunny", "error"), 3);
        assert_eq!(count(&m, "s3", "error"), 3);
        assert_eq!(count(&m, "local", "fallback"), 3);
        // Warned once per provider despite three failures each.
        assert_eq!(s.last_warned.lock().unwrap().len(), 2);
    }

    #[test]
    fn a_panicking_provider_is_caught_and_skipped() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(true, vec![Arc::new(Panics), ok(CdnProvider::S3)], &m);
        let u = s.sign(&SignRequest::new("/a", 1)).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::S3, true));
        assert_eq!(count(&m, "cloudfront", "error"), 1);
    }

    #[test]
    fn bad_input_stops_the_chain_and_every_failure_is_reported() {
        let m = Metrics::new("t", "t").unwrap();
        let bad = Arc::new(Fixed(CdnProvider::Bunny, Err(SigningError::bad("no"))));
        let s = CdnService::from_signers(true, vec![bad, ok(CdnProvider::Local)], &m);
        assert_eq!(
            s.sign(&SignRequest::new("/a", 1)),
            Err(SigningError::bad("no"))
        );
        assert_eq!(count(&m, "local", "fallback"), 0);
        let s = CdnService::from_signers(
            true,
            vec![failing(CdnProvider::Bunny), failing(CdnProvider::Nginx)],
            &m,
        );
        let e = s.sign(&SignRequest::new("/a", 1)).unwrap_err().to_string();
        assert!(
            e.contains("bunny: not configured") && e.contains("nginx: not configured"),
            "{e}"
        );
    }

    struct Dir(CdnProvider);
    impl Signer for Dir {
        fn provider(&self) -> CdnProvider {
            self.0
        }
        fn sign(&self, _: &SignRequest) -> Result<Signed, SigningError> {
            Ok(Signed {
                url: "https://dir.example/t/x".into(),
                expires_at: 7,
            })
        }
        fn covers_directories(&self) -> bool {
            true
        }
    }

    #[test]
    fn directory_urls_skip_providers_that_sign_one_file() {
        let m = Metrics::new("t", "t").unwrap();
        let s = CdnService::from_signers(
            true,
            vec![ok(CdnProvider::S3), Arc::new(Dir(CdnProvider::Local))],
            &m,
        );
        let mut r = SignRequest::new("/t/hls/master.m3u8", 1);
        assert!(matches!(
            s.sign_directory(&r),
            Err(SigningError::BadInput(_))
        ));
        r.token_path = Some("/t/hls/".into());
        let u = s.sign_directory(&r).unwrap();
        assert_eq!((u.provider, u.fallback), (CdnProvider::Local, true));
        assert_eq!(count(&m, "s3", "error"), 1);
        // A plain file URL still goes to the first provider.
        assert_eq!(s.sign(&r).unwrap().provider, CdnProvider::S3);
    }

    #[test]
    fn chain_follows_config_without_duplicates() {
        let m = Metrics::new("t", "t").unwrap();
        let cfg = crate::config::from_toml_str("[cdn]\nfallback = [\"s3\", \"local\"]").unwrap();
        let s = CdnService::new(&cfg, &m);
        assert!(!s.is_enabled());
        assert_eq!(s.chain(), vec![CdnProvider::Local, CdnProvider::S3]);
        let s = CdnService::with_primary(&cfg, &m, CdnProvider::Nginx);
        assert_eq!(
            s.chain(),
            vec![CdnProvider::Nginx, CdnProvider::S3, CdnProvider::Local]
        );
    }
}
