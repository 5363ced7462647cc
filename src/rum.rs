//! Real-user monitoring: validation and label normalisation for web-vitals beacons.
//! Pure functions plus the bounded route set; the HTTP handler lives in `http::api::web_vitals`.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Mutex;

use crate::ratelimit::KeyedLimiter;

use serde::Deserialize;

/// Most items a single beacon may carry (a page flushes several metrics on hide).
pub const MAX_BATCH: usize = 20;
/// Largest beacon body accepted.
pub const MAX_BODY_BYTES: u64 = 8 * 1024;
/// The label value routes beyond `rum.max_routes` are counted under.
pub const OTHER_ROUTE: &str = "other";

/// Reasons a beacon or item is rejected (the closed label set of
/// `veza_rum_beacons_rejected_total{reason}`).
pub const REJECT_REASONS: [&str; 6] = [
    "invalid_json",
    "too_large",
    "unknown_metric",
    "out_of_range",
    "rate_limited",
    "bad_content_type",
];

/// The devices a beacon can report.
pub const DEVICES: [&str; 4] = ["mobile", "desktop", "tablet", "unknown"];

/// A web vital Veza records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vital {
    /// Largest Contentful Paint (ms in, seconds recorded).
    Lcp,
    /// Interaction to Next Paint.
    Inp,
    /// Cumulative Layout Shift (unitless).
    Cls,
    /// First Contentful Paint.
    Fcp,
    /// Time To First Byte.
    Ttfb,
}

impl Vital {
    /// Parses the web-vitals library's metric name.
    pub fn parse(s: &str) -> Option<Vital> {
        Some(match s {
            "LCP" => Vital::Lcp,
            "INP" => Vital::Inp,
            "CLS" => Vital::Cls,
            "FCP" => Vital::Fcp,
            "TTFB" => Vital::Ttfb,
            _ => return None,
        })
    }

    /// Label value.
    pub fn label(self) -> &'static str {
        match self {
            Vital::Lcp => "LCP",
            Vital::Inp => "INP",
            Vital::Cls => "CLS",
            Vital::Fcp => "FCP",
            Vital::Ttfb => "TTFB",
        }
    }

    /// Converts a reported value (milliseconds for timings, as the web-vitals library sends
    /// them; unitless for CLS) into the recorded unit, or says why it is refused.
    pub fn to_recorded(self, value: f64) -> Result<f64, String> {
        let (max, unit) = match self {
            Vital::Cls => (10.0, ""),
            _ => (60_000.0, " ms"),
        };
        if !value.is_finite() || value < 0.0 || value > max {
            return Err(format!(
                "{} value {value}{unit} is outside 0..={max}{unit}",
                self.label()
            ));
        }
        Ok(match self {
            Vital::Cls => value,
            _ => value / 1000.0,
        })
    }
}

/// One metric as a page reports it.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BeaconItem {
    /// `LCP`, `INP`, `CLS`, `FCP` or `TTFB`.
    pub name: String,
    /// Milliseconds for timings, unitless for CLS.
    pub value: f64,
    /// `good`, `needs-improvement` or `poor` (informational).
    #[serde(default)]
    pub rating: Option<String>,
    /// The library's metric instance id (informational).
    #[serde(default)]
    pub id: Option<String>,
    /// The page's path or route name; normalised before use as a label.
    pub route: String,
    /// `mobile`, `desktop`, `tablet`; anything else counts as `unknown`.
    #[serde(default)]
    pub device: Option<String>,
    /// `navigate`, `reload`, … (informational).
    #[serde(default)]
    pub navigation_type: Option<String>,
}

/// A beacon body: one item or an array of up to [`MAX_BATCH`].
#[derive(Debug, Clone)]
pub struct Beacon(pub Vec<BeaconItem>);

impl<'de> Deserialize<'de> for Beacon {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Beacon;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a web-vitals object or an array of them")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<Beacon, A::Error> {
                let item =
                    BeaconItem::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
                Ok(Beacon(vec![item]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Beacon, A::Error> {
                let mut items = Vec::new();
                while let Some(item) = seq.next_element::<BeaconItem>()? {
                    items.push(item);
                }
                Ok(Beacon(items))
            }
        }
        d.deserialize_any(V)
    }
}

/// Normalises a route into a bounded label (exact rule of the RUM spec): lowercase; split on
/// `/`; drop empty segments and segments that are a UUID, all digits, or hex of 8+ chars; join
/// with `-`; replace every char outside `[a-z0-9-]` with `-`; collapse runs of `-`; trim `-`;
/// cut to 32 chars; empty → `root`.
pub fn normalize_route(route: &str) -> String {
    let lower = route.to_lowercase();
    let kept: Vec<&str> = lower
        .split('/')
        .filter(|s| !s.is_empty() && !is_id_segment(s))
        .collect();
    let joined = kept.join("-");
    let mut out = String::with_capacity(joined.len());
    for c in joined.chars() {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' {
            c
        } else {
            '-'
        };
        if c == '-' && out.ends_with('-') {
            continue;
        }
        out.push(c);
    }
    let trimmed = out.trim_matches('-');
    // The rule trims before cutting, so a cut may end on '-': kept as specified.
    let cut: String = trimmed.chars().take(32).collect();
    if cut.is_empty() { "root".into() } else { cut }
}

fn is_id_segment(s: &str) -> bool {
    let all_digits = s.bytes().all(|b| b.is_ascii_digit());
    let hex8 = s.len() >= 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
    all_digits || hex8 || uuid::Uuid::try_parse(s).is_ok()
}

/// Maps a reported device to the closed set.
pub fn normalize_device(device: Option<&str>) -> &'static str {
    match device.map(str::to_ascii_lowercase).as_deref() {
        Some("mobile") => "mobile",
        Some("desktop") => "desktop",
        Some("tablet") => "tablet",
        _ => "unknown",
    }
}

/// The routes seen so far, capped so the `route` label stays bounded.
#[derive(Debug)]
pub struct RouteSet {
    max: usize,
    seen: Mutex<HashSet<String>>,
}

impl RouteSet {
    /// A set that admits at most `max` distinct routes.
    pub fn new(max: usize) -> RouteSet {
        RouteSet {
            max,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// The label to record for a normalised route: itself, or `other` once the cap is reached.
    pub fn admit(&self, route: String) -> String {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&route) {
            return route;
        }
        if seen.len() < self.max {
            seen.insert(route.clone());
            return route;
        }
        OTHER_ROUTE.into()
    }
}

/// Per-process RUM policy: the route cap and the per-IP rate limit.
#[derive(Debug)]
pub struct RumGuard {
    /// Distinct routes admitted as labels.
    pub routes: RouteSet,
    limiter: KeyedLimiter<IpAddr>,
}

impl RumGuard {
    /// A guard admitting `max_routes` routes and `per_min` beacons per IP per minute.
    pub fn new(max_routes: usize, per_min: u32) -> RumGuard {
        RumGuard {
            routes: RouteSet::new(max_routes),
            limiter: KeyedLimiter::per_minute(per_min),
        }
    }

    /// `Ok` when `ip` may send a beacon now, else the seconds to wait.
    pub fn check_rate(&self, ip: IpAddr) -> Result<(), u64> {
        self.limiter.check(&crate::ratelimit::ip_key(ip))
    }

    /// Forgets IPs whose budget is full again.
    pub fn sweep(&self) {
        self.limiter.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_normalise_per_the_rule() {
        for (input, want) in [
            (
                "/Library/Tracks/0192f3c4-5d6e-7f80-9a1b-2c3d4e5f6a7b/Edit",
                "library-tracks-edit",
            ),
            ("/", "root"),
            ("", "root"),
            ("///", "root"),
            ("/tracks/12345", "tracks"),
            ("/tracks/deadbeef/cover", "tracks-cover"),
            ("/tracks/deadbee/cover", "tracks-deadbee-cover"),
            ("/a b/c_d", "a-b-c-d"),
            ("/--x--/", "x"),
            ("/été/ça", "t-a"),
            ("/embed/0192F3C4-5D6E-7F80-9A1B-2C3D4E5F6A7B", "embed"),
            (
                "/abcdefghij/klmnopqrst/uvwxyzabcd/efghij",
                "abcdefghij-klmnopqrst-uvwxyzabcd",
            ),
            (
                "/abcdefghijklmnopqrstuvwxyzabcde/x",
                "abcdefghijklmnopqrstuvwxyzabcde-",
            ),
            ("/library?sort=asc", "library-sort-asc"),
        ] {
            assert_eq!(normalize_route(input), want, "{input}");
        }
    }

    #[test]
    fn devices_fall_back_to_unknown() {
        assert_eq!(normalize_device(Some("Mobile")), "mobile");
        assert_eq!(normalize_device(Some("tv")), "unknown");
        assert_eq!(normalize_device(None), "unknown");
    }

    #[test]
    fn values_are_range_checked_and_converted() {
        assert_eq!(Vital::Lcp.to_recorded(2500.0).unwrap(), 2.5);
        assert_eq!(Vital::Cls.to_recorded(0.1).unwrap(), 0.1);
        assert!(Vital::Lcp.to_recorded(60_001.0).is_err());
        assert!(Vital::Cls.to_recorded(10.5).is_err());
        assert!(Vital::Inp.to_recorded(-1.0).is_err());
        assert!(Vital::Inp.to_recorded(f64::NAN).is_err());
    }

    #[test]
    fn route_set_caps_distinct_routes() {
        let s = RouteSet::new(2);
        assert_eq!(s.admit("a".into()), "a");
        assert_eq!(s.admit("b".into()), "b");
        assert_eq!(s.admit("c".into()), "other");
        assert_eq!(s.admit("a".into()), "a");
    }
}
