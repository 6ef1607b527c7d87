//! Cobblestone-256 against the raw AEAD, per provider, on one core and on two.
//!
//! Group `cobblestone_<provider>`, 16 MiB per iteration:
//!
//! * `baseline_raw_aead`: the provider's AES-256-GCM sealing the 16 MiB as one message, after
//!   copying it into a fresh buffer (the same allocation and copy Cobblestone's one-shot seal
//!   makes), on the calling thread;
//! * `seal_1_core` / `open_1_core`: Cobblestone one-shot, limited to the calling thread;
//! * `seal_2_cores` / `open_2_cores`: the same, allowed two threads.
//!
//! Time ratios below 1 are faster than the baseline: 0.9× throughput per core is a ratio of
//! at most 1.11, 1.6× on two cores at most 0.625.

use ate_storage::cobblestone::{Cobblestone, CryptoProvider};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;

const LEN: usize = 16 * 1024 * 1024;
const KEY: [u8; 32] = [0x5A; 32];
const CTX: &[u8] = b"tenant:bench/object:1/v1";

fn cobblestone(c: &mut Criterion) {
    let plain: Vec<u8> = (0..LEN).map(|i| (i * 31 % 251) as u8).collect();
    for provider in CryptoProvider::all() {
        let mut group = c.benchmark_group(format!("cobblestone_{}", provider.name));
        group.throughput(Throughput::Bytes(LEN as u64));
        group.sample_size(20);
        let aead = provider.aes_256_gcm.key(&KEY);
        group.bench_function("baseline_raw_aead", |b| {
            b.iter(|| {
                let mut buf = plain.clone();
                let tag = aead.seal_in_place(&[7; 12], &[], &mut buf);
                black_box((buf, tag))
            })
        });
        let one = Cobblestone::new(provider).with_max_threads(1);
        let two = Cobblestone::new(provider).with_max_threads(2);
        let sealed = one.seal(&KEY, &plain, CTX).expect("seal");
        group.bench_function("seal_1_core", |b| {
            b.iter(|| black_box(one.seal(&KEY, &plain, CTX).expect("seal")))
        });
        group.bench_function("seal_2_cores", |b| {
            b.iter(|| black_box(two.seal(&KEY, &plain, CTX).expect("seal")))
        });
        group.bench_function("open_1_core", |b| {
            b.iter(|| black_box(one.open(&KEY, &sealed, CTX).expect("open")))
        });
        group.bench_function("open_2_cores", |b| {
            b.iter(|| black_box(two.open(&KEY, &sealed, CTX).expect("open")))
        });
        group.finish();
    }
}

criterion_group!(benches, cobblestone);
criterion_main!(benches);
