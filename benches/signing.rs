//! Cost of one signed URL per provider, beside the bare primitive over the same bytes, so the
//! report can say how much of it is the crypto and how much is building the URL.
//!
//! `cargo bench --bench signing -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use hmac::{Hmac, Mac};
use md5::Md5;
use sha2::{Digest, Sha256};
use veza::config::{CdnProvider, from_toml_str};
use veza::metrics::Metrics;
use veza::signing::{
    BunnySigner, CdnService, CloudFrontSigner, CloudflareSigner, LocalSigner, NginxSigner,
    S3Signer, SignRequest, Signer,
};

const KEY: &str = "229248f0-f007-4bf9-ba1f-bbf1b4ad9d40";
const PATH: &str = "/tracks/7f3a9c/hls/master.m3u8";
const NOW: u64 = 1_767_225_600;

fn config() -> veza::config::Config {
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cloudfront-test-key.pem"
    );
    from_toml_str(&format!(
        r#"
        [storage.s3]
        endpoint = "http://127.0.0.1:9000"
        bucket = "media"
        access_key_id = "AKIAIOSFODNN7EXAMPLE"
        secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
        [cdn]
        enabled = true
        provider = "bunny"
        base_url = "https://veza-test.b-cdn.net"
        security_key = "{KEY}"
        [cdn.local]
        key = "{KEY}"
        [cdn.cloudfront]
        key_pair_id = "K2JCJMDEHXQW5F"
        private_key_path = "{pem}"
        "#
    ))
    .expect("bench config")
}

fn bench(c: &mut Criterion) {
    let cfg = config();
    let mut req = SignRequest::new(PATH, NOW);
    req.expires = Some(NOW + 3600);
    let mut dir_req = req.clone();
    dir_req.token_path = Some("/tracks/7f3a9c/hls/".into());

    // The bytes Bunny HS256 hashes for `req` (path ‖ expires), for the bare baselines.
    let message = format!("{PATH}{}", NOW + 3600);
    let mut g = c.benchmark_group("signing");
    g.bench_function("bare_hmac_sha256", |b| {
        b.iter(|| {
            let mut m = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
            m.update(black_box(message.as_bytes()));
            m.finalize().into_bytes()
        })
    });
    g.bench_function("bare_sha256", |b| {
        b.iter(|| {
            Sha256::new()
                .chain_update(KEY)
                .chain_update(black_box(&message))
                .finalize()
        })
    });
    g.bench_function("bare_md5", |b| {
        b.iter(|| {
            Md5::new()
                .chain_update(black_box(&message))
                .chain_update(KEY)
                .finalize()
        })
    });

    // CloudFront's cost is the RSA private-key operation over a ~150-byte policy.
    let pem = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/cloudfront-test-key.pem"
    );
    let rsa_key = veza::signing::cloudfront::read_private_key(std::path::Path::new(pem)).unwrap();
    let rsa_signer = rsa::pkcs1v15::SigningKey::<sha1::Sha1>::new(rsa_key);
    let policy = format!(
        r#"{{"Statement":[{{"Resource":"https://d111111abcdef8.cloudfront.net{PATH}","Condition":{{"DateLessThan":{{"AWS:EpochTime":{}}}}}}}]}}"#,
        NOW + 3600
    );
    g.bench_function("bare_rsa2048_sha1", |b| {
        use rsa::signature::Signer as _;
        b.iter(|| rsa_signer.sign(black_box(policy.as_bytes())))
    });

    let signers: Vec<(&str, Arc<dyn Signer>)> = vec![
        (
            "bunny_hs256",
            Arc::new(BunnySigner::from_config(&cfg).unwrap()),
        ),
        ("s3_presign", Arc::new(S3Signer::from_config(&cfg).unwrap())),
        ("local", Arc::new(LocalSigner::from_config(&cfg).unwrap())),
        ("nginx", Arc::new(NginxSigner::from_config(&cfg).unwrap())),
        (
            "cloudflare",
            Arc::new(CloudflareSigner::from_config(&cfg).unwrap()),
        ),
        (
            "cloudfront_rsa2048",
            Arc::new(CloudFrontSigner::from_config(&cfg).unwrap()),
        ),
    ];
    for (name, s) in &signers {
        g.bench_function(*name, |b| b.iter(|| s.sign(black_box(&req)).unwrap()));
    }
    let bunny = &signers[0].1;
    g.bench_function("bunny_hs256_dir_token", |b| {
        b.iter(|| bunny.sign(black_box(&dir_req)).unwrap())
    });
    let mut sha = cfg.clone();
    sha.cdn.bunny.scheme = veza::config::BunnyScheme::Sha256;
    let v2 = BunnySigner::from_config(&sha).unwrap();
    g.bench_function("bunny_sha256", |b| {
        b.iter(|| v2.sign(black_box(&req)).unwrap())
    });

    // The whole chain as the API uses it: provider lookup, catch_unwind, counter.
    let metrics = Metrics::new("bench", "bench").unwrap();
    let service = CdnService::with_primary(&cfg, &metrics, CdnProvider::Bunny);
    g.bench_function("service_bunny_hs256", |b| {
        b.iter(|| service.sign(black_box(&req)).unwrap())
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
