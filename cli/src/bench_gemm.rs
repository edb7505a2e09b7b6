//! `verinfer bench gemm`: int8 GEMM throughput of every CPU path (and libtorch when built with
//! `--features tch`) on Llama-3-8B and Qwen2.5-7B projection shapes, beside the measured
//! in-register peak of the kernels' inner instruction sequences, and the cost of one Freivalds
//! audit as a share of the GEMM.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use serde_json::{json, Value};
use verinfer_gpu::freivalds::WeightProjection;
use verinfer_gpu::{gemm_i8_into, Backend, PackedWeights};

/// Arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Print one JSON document instead of the table.
    #[arg(long)]
    json: bool,
    /// A quick run: only 4096→4096, short timing windows.
    #[arg(long)]
    quick: bool,
    /// Token counts T (rows of X).
    #[arg(long, value_delimiter = ',', default_values_t = vec![1usize, 64, 512])]
    tokens: Vec<usize>,
    /// Shapes as K×N (e.g. 4096x14336); default: the Llama-3-8B and Qwen2.5-7B projections.
    #[arg(long, value_delimiter = ',')]
    shapes: Vec<String>,
    /// Minimum timing window per measurement, in milliseconds (default 400, or 60 with
    /// `--quick`); the best run is reported.
    #[arg(long)]
    min_ms: Option<u64>,
    /// Worker threads (default: all cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Skip the libtorch measurements (when built with `tch`).
    #[arg(long)]
    no_torch: bool,
}

/// (model, K, N) of the default shapes.
const SHAPES: &[(&str, usize, usize)] = &[
    ("llama3-8b q/o", 4096, 4096),
    ("llama3-8b k/v", 4096, 1024),
    ("llama3-8b gate/up", 4096, 14336),
    ("llama3-8b down", 14336, 4096),
    ("qwen2.5-7b gate/up", 3584, 18944),
    ("qwen2.5-7b down", 18944, 3584),
];

/// Deterministic values in [-127, 127] (splitmix64), so runs are comparable.
fn fill(len: usize, seed: u64) -> Vec<i8> {
    let mut s = seed;
    (0..len)
        .map(|_| {
            s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = s;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) % 255) as i8 - 127
        })
        .collect()
}

/// One measurement: the best wall time of a run, and the CPU seconds per run averaged over the
/// window (all threads together). On a shared machine the wall time includes time slices lost to
/// other processes; the CPU time does not.
#[derive(Clone, Copy)]
struct Timing {
    best_s: f64,
    cpu_s: Option<f64>,
}

/// Times `f` over a window of at least `min` (and at least two runs after a warm-up run).
fn time_best(min: Duration, mut f: impl FnMut() -> anyhow::Result<()>) -> anyhow::Result<Timing> {
    f()?;
    let cpu0 = verinfer_gpu::process_cpu_secs();
    let start = Instant::now();
    let mut best = f64::INFINITY;
    let mut runs = 0;
    while runs < 2 || start.elapsed() < min {
        let t0 = Instant::now();
        f()?;
        best = best.min(t0.elapsed().as_secs_f64());
        runs += 1;
    }
    let cpu_s = cpu0
        .zip(verinfer_gpu::process_cpu_secs())
        .map(|(a, b)| (b - a) / runs as f64);
    Ok(Timing {
        best_s: best,
        cpu_s,
    })
}

fn gops(t: usize, k: usize, n: usize, secs: f64) -> f64 {
    2.0 * (t * k * n) as f64 / secs / 1e9
}

/// Peak of the inner instruction sequence of `isa` on one core and on `threads` threads at
/// once, in GOPS (2 ops per multiply-add).
#[cfg(target_arch = "x86_64")]
fn peaks(isa: verinfer_gpu::Isa, threads: usize, iters: u64) -> Option<(f64, f64)> {
    let one = verinfer_gpu::peak_macs_per_sec(isa, iters)?;
    let all: f64 = std::thread::scope(|s| {
        let hs: Vec<_> = (0..threads)
            .map(|_| s.spawn(move || verinfer_gpu::peak_macs_per_sec(isa, iters).unwrap_or(0.0)))
            .collect();
        hs.into_iter().map(|h| h.join().unwrap_or(0.0)).sum()
    });
    Some((2.0 * one / 1e9, 2.0 * all / 1e9))
}

fn parse_shape(s: &str) -> anyhow::Result<(String, usize, usize)> {
    let (k, n) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("shape {s:?} is not KxN"))?;
    Ok((format!("{k}→{n}"), k.parse()?, n.parse()?))
}

pub fn run(args: Args) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    verinfer_gpu::with_threads(threads, || run_in_pool(&args, threads))?
}

fn run_in_pool(args: &Args, threads: usize) -> anyhow::Result<()> {
    let min = Duration::from_millis(args.min_ms.unwrap_or(if args.quick { 60 } else { 400 }));
    let shapes: Vec<(String, usize, usize)> = if !args.shapes.is_empty() {
        args.shapes
            .iter()
            .map(|s| parse_shape(s))
            .collect::<anyhow::Result<_>>()?
    } else if args.quick {
        vec![(SHAPES[0].0.to_string(), SHAPES[0].1, SHAPES[0].2)]
    } else {
        SHAPES
            .iter()
            .map(|(m, k, n)| (m.to_string(), *k, *n))
            .collect()
    };
    if args.tokens.contains(&0) {
        bail!("token counts must be positive");
    }

    // Peaks of the exact inner sequences.
    let iters = if args.quick { 1 << 21 } else { 1 << 24 };
    let mut peak_json = serde_json::Map::new();
    #[cfg(target_arch = "x86_64")]
    let (avx2_peak, vnni_peak) = {
        let a = peaks(verinfer_gpu::Isa::Avx2, threads, iters);
        let v = peaks(verinfer_gpu::Isa::Avx512Vnni, threads, iters);
        if let Some((one, all)) = a {
            peak_json.insert(
                "avx2".into(),
                json!({"per_core_gops": one, "all_threads_gops": all}),
            );
        }
        if let Some((one, all)) = v {
            peak_json.insert(
                "avx512_vnni".into(),
                json!({"per_core_gops": one, "all_threads_gops": all}),
            );
        }
        // The denominator of %-of-peak: the larger of the all-threads measurement and
        // per-core × threads (on a shared machine the former can come out low).
        let denom = |p: Option<(f64, f64)>| p.map(|(one, all)| all.max(one * threads as f64));
        (denom(a), denom(v))
    };
    #[cfg(not(target_arch = "x86_64"))]
    let (avx2_peak, vnni_peak): (Option<f64>, Option<f64>) = (None, None);
    let cpu_path = Backend::cpu_path();
    let cpu_peak = match cpu_path {
        "avx512-vnni" => vnni_peak,
        "avx2" => avx2_peak,
        _ => None,
    };

    // Naive reference on one small shape.
    let (rt, rk, rn) = (16, 1024, 256);
    let rx = fill(rt * rk, 1);
    let rw = PackedWeights::pack(&fill(rn * rk, 2), rn, rk)?;
    let mut rout = vec![0i32; rt * rn];
    let ref_s = time_best(min, || {
        gemm_i8_into(Backend::Reference, &rx, rt, &rw, &mut rout)?;
        Ok(())
    })?;
    let ref_cpu_s = time_best(min, || {
        gemm_i8_into(Backend::Cpu, &rx, rt, &rw, &mut rout)?;
        Ok(())
    })?;
    let reference = json!({
        "t": rt, "k": rk, "n": rn,
        "reference_gops": gops(rt, rk, rn, ref_s.best_s),
        "cpu_gops": gops(rt, rk, rn, ref_cpu_s.best_s),
    });

    let with_avx2 = Backend::Avx2.available() && cpu_path != "avx2";
    #[cfg(feature = "tch")]
    let torch_on = !args.no_torch;
    #[cfg(not(feature = "tch"))]
    let torch_on = {
        let _ = args.no_torch;
        false
    };

    let mut rows = Vec::new();
    for (name, k, n) in &shapes {
        let (k, n) = (*k, *n);
        let w = fill(n * k, 3 + k as u64 * 7 + n as u64);
        let packed = PackedWeights::pack(&w, n, k)?;
        let t0 = Instant::now();
        let packed_t = PackedWeights::pack_transposed(&w, n, k)?;
        let transpose_s = t0.elapsed().as_secs_f64();
        drop(w);
        #[cfg(feature = "tch")]
        let mut torch_w = if torch_on {
            Some(verinfer_gpu::torch::TorchWeights::new(
                &packed,
                verinfer_gpu::torch::Device::Cpu,
            )?)
        } else {
            None
        };
        for &t in &args.tokens {
            let x = fill(t * k, 5 + t as u64);
            let mut y = vec![0i32; t * n];
            let cpu_s = time_best(min, || {
                gemm_i8_into(Backend::Cpu, &x, t, &packed, &mut y)?;
                Ok(())
            })?;
            let avx2_s = if with_avx2 {
                Some(time_best(min, || {
                    gemm_i8_into(Backend::Avx2, &x, t, &packed, &mut y)?;
                    Ok(())
                })?)
            } else {
                None
            };
            gemm_i8_into(Backend::Cpu, &x, t, &packed, &mut y)?;
            let seed = [7u8; 32];
            let full_s = time_best(min, || {
                WeightProjection::new(&packed_t, &seed, 1)?.verify(&x, t, &y)?;
                Ok(())
            })?;
            let proj = WeightProjection::new(&packed_t, &seed, 1)?;
            let reuse_s = time_best(min, || {
                proj.verify(&x, t, &y)?;
                Ok(())
            })?;
            #[cfg_attr(not(feature = "tch"), allow(unused_mut))]
            let mut row = json!({
                "shape": name, "k": k, "n": n, "t": t,
                "cpu_path": cpu_path,
                "cpu_gops": gops(t, k, n, cpu_s.best_s),
                "cpu_pct_of_peak": cpu_peak.map(|p| 100.0 * gops(t, k, n, cpu_s.best_s) / p),
                "cpu_gops_cputime": cpu_s.cpu_s.map(|c| gops(t, k, n, c / threads as f64)),
                "cpu_pct_of_peak_cputime": cpu_s.cpu_s.zip(cpu_peak)
                    .map(|(c, p)| 100.0 * gops(t, k, n, c / threads as f64) / p),
                "avx2_gops": avx2_s.map(|s| gops(t, k, n, s.best_s)),
                "avx2_pct_of_peak": avx2_s.zip(avx2_peak).map(|(s, p)| 100.0 * gops(t, k, n, s.best_s) / p),
                "avx2_pct_of_peak_cputime": avx2_s.and_then(|s| s.cpu_s).zip(avx2_peak)
                    .map(|(c, p)| 100.0 * gops(t, k, n, c / threads as f64) / p),
                "audit_full_pct": 100.0 * full_s.best_s / cpu_s.best_s,
                "audit_reuse_pct": 100.0 * reuse_s.best_s / cpu_s.best_s,
                "audit_full_pct_cputime": full_s.cpu_s.zip(cpu_s.cpu_s).map(|(a, g)| 100.0 * a / g),
                "audit_reuse_pct_cputime": reuse_s.cpu_s.zip(cpu_s.cpu_s).map(|(a, g)| 100.0 * a / g),
                "audit_full_pct_of_avx2": avx2_s.map(|s| 100.0 * full_s.best_s / s.best_s),
                "audit_reuse_pct_of_avx2": avx2_s.map(|s| 100.0 * reuse_s.best_s / s.best_s),
                "audit_full_ms": full_s.best_s * 1e3,
                "audit_reuse_ms": reuse_s.best_s * 1e3,
                "transpose_pack_ms": transpose_s * 1e3,
            });
            #[cfg(feature = "tch")]
            if let Some(tw) = torch_w.as_mut() {
                use verinfer_gpu::torch::TorchRoute;
                let f32_s = time_best(min, || {
                    tw.gemm(TorchRoute::F32Chunked, &x, t, &mut y)?;
                    Ok(())
                })?;
                // `_int_mm` on the CPU runs below 1 GOPS: measured on the k/v shape only (and
                // once, no window), or the run would take many minutes.
                let int_mm = if k == 4096 && n == 1024 {
                    let t0 = Instant::now();
                    tw.gemm(TorchRoute::IntMm, &x, t, &mut y)?;
                    Some(gops(t, k, n, t0.elapsed().as_secs_f64()))
                } else {
                    None
                };
                row["torch_f32_chunked_gops"] = json!(gops(t, k, n, f32_s.best_s));
                row["torch_int_mm_cpu_gops"] = json!(int_mm);
                row["cpu_over_torch"] = json!(f32_s.best_s / cpu_s.best_s);
                row["avx2_over_torch"] = json!(avx2_s.map(|s| f32_s.best_s / s.best_s));
            }
            if !args.json {
                print_row(&row, rows.is_empty(), torch_on);
            }
            rows.push(row);
        }
    }
    let doc = json!({
        "threads": threads,
        "cpu_path": cpu_path,
        "peak": Value::Object(peak_json.clone()),
        "reference": reference,
        "torch": torch_on,
        "rows": rows,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&doc)?);
    } else {
        println!();
        println!("threads: {threads}, cpu path: {cpu_path}");
        for (isa, p) in &peak_json {
            println!(
                "peak {isa}: {:.1} GOPS per core, {:.1} GOPS on all threads (in-register inner sequence)",
                p["per_core_gops"].as_f64().unwrap_or(0.0),
                p["all_threads_gops"].as_f64().unwrap_or(0.0)
            );
        }
        println!(
            "reference (naive) T={rt} {rk}→{rn}: {:.2} GOPS (cpu path on the same shape: {:.1} GOPS)",
            doc["reference"]["reference_gops"].as_f64().unwrap_or(0.0),
            doc["reference"]["cpu_gops"].as_f64().unwrap_or(0.0)
        );
    }
    Ok(())
}

fn f(v: &Value, digits: usize) -> String {
    v.as_f64()
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "-".into())
}

fn print_row(r: &Value, header: bool, torch: bool) {
    if header {
        print!(
            "{:<20} {:>4} {:>12} {:>5} | {:>8} {:>6} {:>6} | {:>8} {:>6} {:>6}",
            "shape", "T", "K→N", "", "cpu", "%peak", "%pk-ct", "avx2", "%peak", "%pk-ct"
        );
        if torch {
            print!(" | {:>9} {:>8} {:>7}", "torch-f32", "int_mm", "cpu/t");
        }
        println!(
            " | {:>7} {:>7} {:>7} {:>7}",
            "audit%", "reuse%", "aud-ct", "reu-ct"
        );
    }
    print!(
        "{:<20} {:>4} {:>12} {:>5} | {:>8} {:>6} {:>6} | {:>8} {:>6} {:>6}",
        r["shape"].as_str().unwrap_or(""),
        r["t"],
        format!("{}→{}", r["k"], r["n"]),
        "GOPS",
        f(&r["cpu_gops"], 1),
        f(&r["cpu_pct_of_peak"], 1),
        f(&r["cpu_pct_of_peak_cputime"], 1),
        f(&r["avx2_gops"], 1),
        f(&r["avx2_pct_of_peak"], 1),
        f(&r["avx2_pct_of_peak_cputime"], 1),
    );
    if torch {
        print!(
            " | {:>9} {:>8} {:>7}",
            f(&r["torch_f32_chunked_gops"], 1),
            f(&r["torch_int_mm_cpu_gops"], 2),
            f(&r["cpu_over_torch"], 2)
        );
    }
    println!(
        " | {:>7} {:>7} {:>7} {:>7}",
        f(&r["audit_full_pct"], 2),
        f(&r["audit_reuse_pct"], 2),
        f(&r["audit_full_pct_cputime"], 2),
        f(&r["audit_reuse_pct_cputime"], 2)
    );
}
