//! ate-orchestrate balancing benches: nanoseconds per pick, and the cost of recording an
//! outcome.
//!
//! * `balance_pick_{10,1000,10000}_{1t,2t}`: one `Balancer::pick` plus dropping its guard
//!   (which decrements the in-flight count and reports `Cancelled`; no observer), for each
//!   strategy, over that many healthy endpoints with weights 1, 2, 3, 1, 2, 3, … . The
//!   baseline is the plainest round robin: an `AtomicUsize` index `fetch_add` modulo the
//!   length of a `Vec` of endpoint ids, reading the id. `consistent_hash` picks with a key
//!   from a rotating set of 1,024 tenant ids. `2t`: two threads pick concurrently from the
//!   same balancer (`iter_custom`, both released together by a barrier); the time reported
//!   per iteration is the wall time in which *each* thread made one pick, so perfect
//!   scaling shows the same time as `1t`, and a larger ratio than `1t` shows contention.
//! * `balance_outcome`: the cost of completing a guard, over 10 endpoints with round robin:
//!   the baseline drops the guard (`Cancelled`, no observer); `success_no_observer` calls
//!   `guard.success()`; `success_with_observer` adds an `OutcomeObserver` that bumps an
//!   atomic; `outlier_observer` uses the `OutlierDetector` as observer; `breaker_permit`
//!   also takes and completes a `CircuitBreaker` permit through `attach_permit`.

use ate_orchestrate::balance::{Balancer, Endpoint, PickGuard, Strategy};
use ate_orchestrate::breaker::{BreakerConfig, BreakerRegistry, OutlierConfig, OutlierDetector};
use ate_orchestrate::{EndpointId, Outcome, OutcomeObserver};
use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const SIZES: [usize; 3] = [10, 1_000, 10_000];
const KEYS: usize = 1_024;

const STRATEGIES: [(&str, Strategy); 5] = [
    ("round_robin", Strategy::RoundRobin),
    ("smooth_weighted", Strategy::SmoothWeighted),
    ("least_request", Strategy::LeastRequest),
    ("random", Strategy::Random),
    ("consistent_hash", Strategy::ConsistentHash),
];

fn endpoints(n: usize) -> Vec<Endpoint<()>> {
    (0..n)
        .map(|i| {
            Endpoint::new(format!("10.0.{}.{}:8080", i / 256, i % 256), ())
                .weight(1 + (i % 3) as u32)
        })
        .collect()
}

fn balancer(strategy: Strategy, n: usize) -> Balancer<()> {
    let b = Balancer::builder("bench", strategy)
        .build()
        .expect("balancer");
    b.update(endpoints(n)).expect("update");
    b
}

/// The plain baseline: an atomic index over a Vec.
struct PlainRoundRobin {
    ids: Vec<EndpointId>,
    next: AtomicUsize,
}

impl PlainRoundRobin {
    fn new(n: usize) -> Self {
        PlainRoundRobin {
            ids: endpoints(n).into_iter().map(|e| e.id).collect(),
            next: AtomicUsize::new(0),
        }
    }

    fn pick(&self) -> &EndpointId {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.ids.len();
        &self.ids[i]
    }
}

fn keys() -> Vec<Vec<u8>> {
    (0..KEYS)
        .map(|i| format!("tenant-{i:04}").into_bytes())
        .collect()
}

fn pick_once(b: &Balancer<()>, keys: &[Vec<u8>], i: &mut usize) -> PickGuard<()> {
    *i = (*i + 1) % KEYS;
    b.pick(Some(&keys[*i])).expect("pick")
}

/// Runs `f` on two threads, `iters` times each, and returns the wall time.
fn two_threads(iters: u64, f: impl Fn() + Sync) -> Duration {
    let barrier = Barrier::new(3);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| {
                barrier.wait();
                for _ in 0..iters {
                    f();
                }
                barrier.wait();
            });
        }
        barrier.wait();
        let start = Instant::now();
        barrier.wait();
        start.elapsed()
    })
}

fn configure(group: &mut BenchmarkGroup<'_, WallTime>) {
    group.warm_up_time(Duration::from_secs(1));
    group.measurement_time(Duration::from_secs(3));
}

fn pick_one_thread(c: &mut Criterion) {
    let keys = keys();
    for n in SIZES {
        let mut group = c.benchmark_group(format!("balance_pick_{n}_1t"));
        configure(&mut group);
        let plain = PlainRoundRobin::new(n);
        group.bench_function("baseline_atomic_rr", |b| b.iter(|| black_box(plain.pick())));
        for (name, strategy) in STRATEGIES {
            let balancer = balancer(strategy, n);
            let mut i = 0;
            group.bench_function(name, |b| {
                b.iter(|| black_box(pick_once(&balancer, &keys, &mut i)))
            });
        }
        group.finish();
    }
}

fn pick_two_threads(c: &mut Criterion) {
    let keys = keys();
    for n in SIZES {
        let mut group = c.benchmark_group(format!("balance_pick_{n}_2t"));
        configure(&mut group);
        let plain = PlainRoundRobin::new(n);
        group.bench_function("baseline_atomic_rr", |b| {
            b.iter_custom(|iters| {
                two_threads(iters, || {
                    black_box(plain.pick());
                })
            })
        });
        for (name, strategy) in STRATEGIES {
            let balancer = balancer(strategy, n);
            let keys = &keys;
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let thread_key = AtomicUsize::new(0);
                    two_threads(iters, || {
                        let mut i = thread_key.fetch_add(1, Ordering::Relaxed) % KEYS;
                        black_box(pick_once(&balancer, keys, &mut i));
                    })
                })
            });
        }
        group.finish();
    }
}

#[derive(Debug, Default)]
struct CountingObserver(AtomicU64);

impl OutcomeObserver for CountingObserver {
    fn on_outcome(&self, _: &EndpointId, outcome: Outcome, latency: Duration) {
        if outcome == Outcome::Success {
            self.0
                .fetch_add(latency.as_nanos() as u64 | 1, Ordering::Relaxed);
        }
    }
}

fn outcome(c: &mut Criterion) {
    let mut group = c.benchmark_group("balance_outcome");
    configure(&mut group);
    let plain = balancer(Strategy::RoundRobin, 10);
    group.bench_function("baseline_pick_and_drop", |b| {
        b.iter(|| drop(black_box(plain.pick(None).expect("pick"))))
    });
    group.bench_function("success_no_observer", |b| {
        b.iter(|| black_box(plain.pick(None).expect("pick")).success())
    });

    let observed: Balancer<()> = Balancer::builder("bench", Strategy::RoundRobin)
        .observer(Arc::new(CountingObserver::default()))
        .build()
        .expect("balancer");
    observed.update(endpoints(10)).expect("update");
    group.bench_function("success_with_observer", |b| {
        b.iter(|| black_box(observed.pick(None).expect("pick")).success())
    });

    let detector = Arc::new(OutlierDetector::new(OutlierConfig::default()).expect("detector"));
    let ejecting: Balancer<()> = Balancer::builder("bench", Strategy::RoundRobin)
        .observer(detector.clone())
        .availability(detector)
        .build()
        .expect("balancer");
    ejecting.update(endpoints(10)).expect("update");
    group.bench_function("outlier_observer", |b| {
        b.iter(|| black_box(ejecting.pick(None).expect("pick")).success())
    });

    let breakers = Arc::new(BreakerRegistry::new(BreakerConfig::default()).expect("breakers"));
    let guarded: Balancer<()> = Balancer::builder("bench", Strategy::RoundRobin)
        .availability(breakers.clone())
        .build()
        .expect("balancer");
    guarded.update(endpoints(10)).expect("update");
    group.bench_function("breaker_permit", |b| {
        b.iter(|| {
            let mut guard = guarded.pick(None).expect("pick");
            let permit = breakers.try_acquire(guard.id()).expect("permit");
            guard.attach_permit(permit);
            black_box(guard).success();
        })
    });
    group.finish();
}

criterion_group!(benches, pick_one_thread, pick_two_threads, outcome);
criterion_main!(benches);
