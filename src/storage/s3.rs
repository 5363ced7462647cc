//! The S3 backend: any S3-compatible store (AWS, MinIO, Garage, R2) through the `object_store`
//! crate, which brings SigV4, retries with backoff, paginated listings and resumable ranged
//! reads.
//!
//! Writes: a body that ends within [`PART_SIZE`] is one PUT; a longer one is a multipart upload
//! (parts of [`PART_SIZE`], two in flight) that S3 shows only once complete and that is aborted
//! on any failure. Content-addressed puts need the hash before the key: small bodies are hashed
//! in memory and PUT straight to their key; larger ones go to `.tmp/{uuid}`, then a server-side
//! CopyObject to the key and a delete of the temp object (CopyObject handles up to 5 GiB, far
//! above `storage.max_upload_bytes`' default).
//!
//! Errors: `object_store` keeps the store's XML error body in its error text but not as a
//! public type, so [`s3_error`] reads `<Code>` and `<Message>` from that text.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::path::Path as OsPath;
use object_store::{
    BackoffConfig, ClientOptions, GetOptions, GetRange, MultipartUpload, ObjectStore,
    ObjectStoreExt, PutPayload, RetryConfig, UploadPart,
};

use super::{
    BlobKey, ByteRange, ByteStream, GetObject, Meter, ObjectMeta, StoreError, StoreMetrics, Stored,
    TEMP_PREFIX, count, next_chunk, temp_name,
};
use crate::config::S3Config;

/// Multipart part size, and the largest body sent as a single PUT. S3 needs ≥ 5 MiB parts
/// (but the last) and at most 10,000 of them: 8 MiB parts reach 78 GiB.
pub const PART_SIZE: usize = 8 * 1024 * 1024;

/// Parts uploading at once: keeps the link busy while the next part is read, and bounds
/// memory per upload to about three parts.
const PARTS_IN_FLIGHT: usize = 2;

/// An S3-compatible bucket.
#[derive(Clone)]
pub struct S3Store {
    client: Arc<AmazonS3>,
    bucket: Arc<str>,
    metrics: Option<StoreMetrics>,
}

fn os_path(key: &BlobKey) -> Result<OsPath, StoreError> {
    OsPath::parse(key.as_str()).map_err(|e| StoreError::InvalidKey(e.to_string()))
}

fn temp_path() -> OsPath {
    OsPath::parse(format!("{TEMP_PREFIX}/{}", temp_name())).expect("a uuid is a valid segment")
}

impl S3Store {
    /// Builds the client from `[storage.s3]`; no request is made until the first operation.
    pub fn open(cfg: &S3Config) -> Result<S3Store, StoreError> {
        let endpoint = cfg
            .endpoint
            .as_ref()
            .ok_or_else(|| StoreError::Config("storage.s3.endpoint: empty".into()))?;
        let base = endpoint.as_str().trim_end_matches('/');
        // object_store wants the bucket in a virtual-hosted endpoint; build it the way the
        // presigner does, so stored objects and signed URLs name the same host.
        let endpoint = if cfg.path_style {
            base.to_owned()
        } else {
            let mut u = endpoint.clone();
            let host = u.host_str().unwrap_or_default().to_owned();
            u.set_host(Some(&format!("{}.{host}", cfg.bucket)))
                .map_err(|e| StoreError::Config(format!("storage.s3.endpoint: {e}")))?;
            u.as_str().trim_end_matches('/').to_owned()
        };
        let options = ClientOptions::new()
            .with_allow_http(true)
            // A store that is down must fail an upload in seconds (a 503 the client can retry),
            // not hold it: any S3 endpoint worth using connects in well under this.
            .with_connect_timeout(Duration::from_secs(5))
            // Bodies stream to slow clients for minutes; an idle read is what is fatal, and a
            // broken ranged read resumes where it stopped.
            .with_timeout_disabled()
            .with_read_timeout(Duration::from_secs(60));
        let retry = RetryConfig {
            backoff: BackoffConfig::default(),
            max_retries: 3,
            retry_timeout: Duration::from_secs(30),
        };
        let mut b = AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(&cfg.bucket)
            .with_region(&cfg.region)
            .with_access_key_id(&cfg.access_key_id)
            .with_secret_access_key(cfg.secret_access_key.expose())
            .with_virtual_hosted_style_request(!cfg.path_style)
            .with_client_options(options)
            .with_retry(retry);
        if !cfg.session_token.is_empty() {
            b = b.with_token(cfg.session_token.expose());
        }
        let client = b
            .build()
            .map_err(|e| StoreError::Config(format!("storage.s3: {e}")))?;
        Ok(S3Store {
            client: Arc::new(client),
            bucket: cfg.bucket.as_str().into(),
            metrics: None,
        })
    }

    pub(crate) fn with_metrics(mut self, metrics: StoreMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub(crate) fn metrics(&self) -> Option<&StoreMetrics> {
        self.metrics.as_ref()
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Reads up to [`PART_SIZE`] bytes of `body`; the flag is true when that was all of it.
    async fn first_part(
        body: &mut ByteStream,
        meter: &mut Meter,
    ) -> Result<(Vec<Bytes>, bool), StoreError> {
        let mut buf = Vec::new();
        let mut len = 0;
        while len < PART_SIZE {
            match next_chunk(body).await? {
                Some(chunk) => {
                    meter.feed(&chunk)?;
                    len += chunk.len();
                    buf.push(chunk);
                }
                None => return Ok((buf, true)),
            }
        }
        Ok((buf, false))
    }

    /// Uploads `first` and the rest of `body` to `path` as a multipart upload; aborts it on
    /// any failure, and when this future is dropped.
    async fn multipart(
        &self,
        path: &OsPath,
        first: Vec<Bytes>,
        body: &mut ByteStream,
        meter: &mut Meter,
    ) -> Result<(), StoreError> {
        let upload = self
            .client
            .put_multipart(path)
            .await
            .map_err(|e| s3_error("multipart", e))?;
        let mut guard = AbortOnDrop(Some(upload));
        let r = send_parts(guard.upload(), first, body, meter).await;
        let mut upload = guard.0.take().expect("still armed");
        match r {
            Ok(()) => match upload.complete().await {
                Ok(_) => Ok(()),
                Err(e) => {
                    let _ = upload.abort().await;
                    Err(s3_error("multipart", e))
                }
            },
            Err(e) => {
                if let Err(abort) = upload.abort().await {
                    tracing::warn!(error = %abort, "could not abort a failed multipart upload");
                }
                Err(e)
            }
        }
    }

    pub(crate) async fn put(
        &self,
        key: &BlobKey,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> Result<Stored, StoreError> {
        let path = os_path(key)?;
        let mut meter = Meter::new(max_bytes);
        let (first, whole) = Self::first_part(&mut body, &mut meter).await?;
        // Same answer as the local backend: was something replaced?
        let existed = self.head(key).await?.is_some();
        if whole {
            self.put_small(&path, first).await?;
        } else {
            self.multipart(&path, first, &mut body, &mut meter).await?;
        }
        let (size, sha256) = meter.finish();
        Ok(Stored {
            key: key.clone(),
            size,
            sha256,
            existed,
        })
    }

    async fn put_small(&self, path: &OsPath, chunks: Vec<Bytes>) -> Result<(), StoreError> {
        self.client
            .put(path, PutPayload::from_iter(chunks))
            .await
            .map(drop)
            .map_err(|e| s3_error("put", e))
    }

    pub(crate) async fn put_content_addressed(
        &self,
        prefix: &str,
        ext: &str,
        mut body: ByteStream,
        max_bytes: u64,
    ) -> Result<Stored, StoreError> {
        let mut meter = Meter::new(max_bytes);
        let (first, whole) = Self::first_part(&mut body, &mut meter).await?;
        if whole {
            // Small: the hash is known before anything is sent, so no temp object is needed.
            let (size, sha256) = meter.finish();
            let key = BlobKey::content_addressed(prefix, &sha256, ext);
            let existed = self.head(&key).await?.is_some();
            if !existed {
                self.put_small(&os_path(&key)?, first).await?;
            }
            return Ok(Stored {
                key,
                size,
                sha256,
                existed,
            });
        }
        let temp = temp_path();
        let guard = DeleteOnDrop(Some((Arc::clone(&self.client), temp.clone())));
        self.multipart(&temp, first, &mut body, &mut meter).await?;
        let (size, sha256) = meter.finish();
        let key = BlobKey::content_addressed(prefix, &sha256, ext);
        let existed = self.head(&key).await?.is_some();
        if !existed {
            let started = std::time::Instant::now();
            let r = self
                .client
                .copy(&temp, &os_path(&key)?)
                .await
                .map_err(|e| s3_error("copy", e));
            count(self.metrics(), "s3", "copy", started, &r);
            r?;
        }
        guard.delete_now().await;
        Ok(Stored {
            key,
            size,
            sha256,
            existed,
        })
    }

    pub(crate) async fn get(
        &self,
        key: &BlobKey,
        range: Option<ByteRange>,
    ) -> Result<GetObject, StoreError> {
        let path = os_path(key)?;
        let get_range = match range {
            None => None,
            Some(ByteRange::From(s)) => Some(GetRange::Offset(s)),
            Some(ByteRange::Suffix(n)) if n > 0 => Some(GetRange::Suffix(n)),
            Some(ByteRange::Inclusive(a, b)) if a <= b => {
                Some(GetRange::Bounded(a..b.saturating_add(1)))
            }
            // Empty whatever the size: only the size is left to find out.
            Some(_) => return Err(self.unsatisfiable(key).await),
        };
        let opts = GetOptions {
            range: get_range,
            ..Default::default()
        };
        match self.client.get_opts(&path, opts).await {
            Ok(r) => {
                let size = r.meta.size;
                let start = r.range.start;
                let end = r.range.end.saturating_sub(1).max(start);
                let etag = r.meta.e_tag.clone().map(quoted);
                let body: ByteStream = Box::pin(r.into_stream().map_err(body_error));
                Ok(GetObject {
                    size,
                    start,
                    end,
                    etag,
                    body,
                })
            }
            Err(e) => match s3_error("get", e) {
                StoreError::S3 { status: 416, .. } => Err(self.unsatisfiable(key).await),
                StoreError::S3 { code, .. } if code == "InvalidRange" => {
                    Err(self.unsatisfiable(key).await)
                }
                // Some stores (s3s-fs) fail a suffix longer than the object instead of sending
                // it whole, as RFC 9110 says; ask again for the explicit range.
                StoreError::S3 { status: 500.., .. }
                    if matches!(range, Some(ByteRange::Suffix(_))) =>
                {
                    let Some(meta) = self.head(key).await? else {
                        return Err(StoreError::NotFound(key.to_string()));
                    };
                    let (start, end) = range
                        .and_then(|r| r.resolve(meta.size))
                        .ok_or(StoreError::RangeNotSatisfiable { size: meta.size })?;
                    Box::pin(self.get(key, Some(ByteRange::Inclusive(start, end)))).await
                }
                StoreError::NotFound(_) => Err(StoreError::NotFound(key.to_string())),
                e => Err(e),
            },
        }
    }

    /// `RangeNotSatisfiable` with the object's size (S3's 416 body does not carry it).
    async fn unsatisfiable(&self, key: &BlobKey) -> StoreError {
        match self.head(key).await {
            Ok(Some(m)) => StoreError::RangeNotSatisfiable { size: m.size },
            Ok(None) => StoreError::NotFound(key.to_string()),
            Err(e) => e,
        }
    }

    pub(crate) async fn head(&self, key: &BlobKey) -> Result<Option<ObjectMeta>, StoreError> {
        match self.client.head(&os_path(key)?).await {
            Ok(m) => Ok(Some(ObjectMeta {
                key: key.clone(),
                size: m.size,
                etag: m.e_tag.map(quoted),
                modified: Some(m.last_modified.into()),
            })),
            Err(e) => match s3_error("head", e) {
                StoreError::NotFound(_) => Ok(None),
                e => Err(e),
            },
        }
    }

    pub(crate) async fn delete(&self, key: &BlobKey) -> Result<(), StoreError> {
        match self.client.delete(&os_path(key)?).await {
            Ok(()) => Ok(()),
            Err(e) => match s3_error("delete", e) {
                StoreError::NotFound(_) => Ok(()),
                e => Err(e),
            },
        }
    }

    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        // object_store lists by whole segments: list the folder part, filter by string prefix.
        let dir = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let dir = if dir.is_empty() {
            None
        } else {
            Some(OsPath::parse(dir).map_err(|e| StoreError::InvalidKey(e.to_string()))?)
        };
        let mut stream = self.client.list(dir.as_ref());
        let mut out = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| s3_error("list", e))?;
            let raw = m.location.as_ref();
            if !raw.starts_with(prefix) {
                continue;
            }
            // `.tmp/…` and anything not written through BlobKey is not an object of ours.
            let Ok(key) = BlobKey::parse(raw) else {
                continue;
            };
            out.push(ObjectMeta {
                key,
                size: m.size,
                etag: m.e_tag.map(quoted),
                modified: Some(m.last_modified.into()),
            });
        }
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    pub(crate) async fn probe_writable(&self) -> Result<(), StoreError> {
        let path = OsPath::parse(format!("{TEMP_PREFIX}/probe-{}", temp_name()))
            .expect("a uuid is a valid segment");
        self.client
            .put(&path, PutPayload::from_static(b"veza"))
            .await
            .map_err(|e| s3_error("put", e))?;
        self.client
            .delete(&path)
            .await
            .map_err(|e| s3_error("delete", e))
    }

    pub(crate) async fn sweep_temp(&self, age: Duration) -> Result<usize, StoreError> {
        let tmp = OsPath::parse(TEMP_PREFIX).expect("a valid segment");
        let cutoff = SystemTime::now() - age;
        let mut stream = self.client.list(Some(&tmp));
        let mut stale = Vec::new();
        while let Some(item) = stream.next().await {
            let m = item.map_err(|e| s3_error("list", e))?;
            if SystemTime::from(m.last_modified) <= cutoff {
                stale.push(m.location);
            }
        }
        for p in &stale {
            match self.client.delete(p).await {
                Ok(()) => {}
                Err(e) => match s3_error("delete", e) {
                    StoreError::NotFound(_) => {}
                    e => return Err(e),
                },
            }
        }
        Ok(stale.len())
    }
}

/// Sends every part: `first`, then the rest of `body` in [`PART_SIZE`] pieces.
async fn send_parts(
    upload: &mut dyn MultipartUpload,
    first: Vec<Bytes>,
    body: &mut ByteStream,
    meter: &mut Meter,
) -> Result<(), StoreError> {
    let mut in_flight: VecDeque<UploadPart> = VecDeque::new();
    in_flight.push_back(upload.put_part(PutPayload::from_iter(first)));
    let mut buf: Vec<Bytes> = Vec::new();
    let mut len = 0;
    loop {
        let chunk = next_chunk(body).await?;
        let done = chunk.is_none();
        if let Some(chunk) = chunk {
            meter.feed(&chunk)?;
            len += chunk.len();
            buf.push(chunk);
        }
        if len >= PART_SIZE || (done && len > 0) {
            if in_flight.len() >= PARTS_IN_FLIGHT {
                let part = in_flight.pop_front().expect("non-empty");
                part.await.map_err(|e| s3_error("multipart", e))?;
            }
            in_flight.push_back(upload.put_part(PutPayload::from_iter(std::mem::take(&mut buf))));
            len = 0;
        }
        if done {
            break;
        }
    }
    for part in in_flight {
        part.await.map_err(|e| s3_error("multipart", e))?;
    }
    Ok(())
}

/// Aborts a multipart upload when dropped armed (the caller's future was cancelled), so no
/// invisible parts linger in the bucket.
struct AbortOnDrop(Option<Box<dyn MultipartUpload>>);

impl AbortOnDrop {
    fn upload(&mut self) -> &mut dyn MultipartUpload {
        self.0.as_deref_mut().expect("armed")
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(mut up) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = up.abort().await;
            });
        }
    }
}

/// Deletes a temp object when dropped (any failure or cancellation after it was written).
struct DeleteOnDrop(Option<(Arc<AmazonS3>, OsPath)>);

impl DeleteOnDrop {
    async fn delete_now(mut self) {
        if let Some((client, path)) = self.0.take()
            && let Err(e) = client.delete(&path).await
        {
            tracing::warn!(error = %e, "could not delete a temp object; sweep_temp will");
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if let Some((client, path)) = self.0.take()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(async move {
                let _ = client.delete(&path).await;
            });
        }
    }
}

/// A read that broke midway, as an I/O error whose kind tells a store that went away
/// ([`super::io_fault`] says `Unavailable`) from any other failure.
fn body_error(e: object_store::Error) -> std::io::Error {
    let e = s3_error("get", e);
    let kind = match e.fault() {
        super::Fault::Unavailable => std::io::ErrorKind::ConnectionAborted,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e.to_string())
}

fn quoted(etag: String) -> String {
    if etag.starts_with('"') || etag.starts_with("W/") {
        etag
    } else {
        format!("\"{etag}\"")
    }
}

/// Maps an `object_store` error to ours, with the store's status, `<Code>` and `<Message>`
/// read from the error text (which quotes the response body). A 404 for a key is `NotFound`;
/// a 404 for a missing bucket stays an S3 error with its code.
pub(crate) fn s3_error(op: &'static str, e: object_store::Error) -> StoreError {
    let not_found = matches!(e, object_store::Error::NotFound { .. });
    let text = error_chain(&e);
    let status = status_in(&text);
    let code = xml_field(&text, "Code");
    let message = xml_field(&text, "Message");
    if not_found && code.as_deref().is_none_or(|c| c == "NoSuchKey") {
        let path = match &e {
            object_store::Error::NotFound { path, .. } => path.clone(),
            _ => String::new(),
        };
        return StoreError::NotFound(path);
    }
    // No XML body (HEAD answers have none): the reason phrase, as in `Forbidden`.
    let code = code.or_else(|| reason_in(&text)).unwrap_or_else(|| {
        match (&e, status) {
            (_, 0) => "Unreachable",
            (object_store::Error::Precondition { .. }, _) => "PreconditionFailed",
            (object_store::Error::AlreadyExists { .. }, _) => "AlreadyExists",
            _ => "Error",
        }
        .to_owned()
    });
    // No <Message> (s3s-fs sends none): our own context, without the raw XML.
    let message = message.unwrap_or_else(|| {
        let cut = text.find("<?xml").or_else(|| text.find("<Error>"));
        let head = cut.map_or(text.as_str(), |i| &text[..i]);
        head.trim_end_matches([' ', ':']).to_owned()
    });
    StoreError::S3 {
        op,
        status,
        code,
        message,
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cur = s.source();
    }
    text
}

/// The HTTP status in `object_store`'s text: `status code: 404 Not Found`, or 200 for
/// "error response" (an error body in a 200, as CompleteMultipartUpload may send); 0 if none.
fn status_in(text: &str) -> u16 {
    if let Some(i) = text.find("status code: ") {
        let digits: String = text[i + 13..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        return digits.parse().unwrap_or(0);
    }
    if text.contains("Server returned error response") {
        return 200;
    }
    0
}

/// The reason phrase after the status, without spaces: `403 Forbidden:` gives `Forbidden`.
fn reason_in(text: &str) -> Option<String> {
    let i = text.find("status code: ")? + 13;
    let rest = text[i..].trim_start_matches(|c: char| c.is_ascii_digit());
    let phrase: String = rest
        .split(':')
        .next()?
        .chars()
        .filter(|c| c.is_ascii_alphabetic())
        .collect();
    Some(phrase).filter(|p| !p.is_empty())
}

/// The text of the first `<name>…</name>`, XML entities decoded.
fn xml_field(text: &str, name: &str) -> Option<String> {
    let open = format!("<{name}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&format!("</{name}>"))?;
    let v = text[start..end]
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&");
    Some(v.trim().to_owned()).filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    const BODY: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchBucket</Code>\
        <Message>The specified bucket does not exist &amp; never did</Message></Error>";

    fn generic(text: String) -> object_store::Error {
        object_store::Error::Generic {
            store: "S3",
            source: text.into(),
        }
    }

    #[test]
    fn the_store_s_code_and_message_come_through() {
        let e = generic(format!(
            "Error performing PUT http://127.0.0.1:1/b/k in 2ms - Server returned non-2xx status code: 404 Not Found: {BODY}"
        ));
        match s3_error("put", e) {
            StoreError::S3 {
                op,
                status,
                code,
                message,
            } => {
                assert_eq!((op, status), ("put", 404));
                assert_eq!(code, "NoSuchBucket");
                assert_eq!(message, "The specified bucket does not exist & never did");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_key_is_not_found_but_a_missing_bucket_is_not() {
        let key = object_store::Error::NotFound {
            path: "a/b".into(),
            source: "Server returned non-2xx status code: 404 Not Found: <Error><Code>NoSuchKey</Code></Error>".into(),
        };
        assert!(matches!(s3_error("get", key), StoreError::NotFound(p) if p == "a/b"));
        let head = object_store::Error::NotFound {
            path: "a/b".into(),
            source: "Server returned non-2xx status code: 404 Not Found: ".into(),
        };
        assert!(matches!(s3_error("head", head), StoreError::NotFound(_)));
        let bucket = object_store::Error::NotFound {
            path: "a/b".into(),
            source: format!("Server returned non-2xx status code: 404 Not Found: {BODY}").into(),
        };
        assert!(
            matches!(s3_error("get", bucket), StoreError::S3 { status: 404, code, .. } if code == "NoSuchBucket")
        );
    }

    #[test]
    fn without_a_message_the_context_stays_and_the_xml_goes() {
        let e = generic("Error performing GET http://h/b?list-type=2 - Server returned non-2xx status code: 404 Not Found: <?xml version=\"1.0\"?><Error><Code>NoSuchBucket</Code></Error>".into());
        match s3_error("list", e) {
            StoreError::S3 { code, message, .. } => {
                assert_eq!(code, "NoSuchBucket");
                assert!(message.ends_with("404 Not Found"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_bodiless_answer_is_named_by_its_reason_phrase() {
        let e = generic("Error performing HEAD http://h/b/k - Server returned non-2xx status code: 403 Forbidden: ".into());
        assert!(
            matches!(s3_error("head", e), StoreError::S3 { status: 403, code, .. } if code == "Forbidden")
        );
    }

    #[test]
    fn no_response_is_status_0_unreachable() {
        let e = generic(
            "Error performing GET http://127.0.0.1:1/b in 1s - HTTP error: error sending request"
                .into(),
        );
        assert!(
            matches!(s3_error("get", e), StoreError::S3 { status: 0, code, message, .. }
                if code == "Unreachable" && message.contains("error sending request"))
        );
    }

    #[test]
    fn etags_are_quoted_once() {
        assert_eq!(quoted("abc".into()), "\"abc\"");
        assert_eq!(quoted("\"abc-2\"".into()), "\"abc-2\"");
    }
}
