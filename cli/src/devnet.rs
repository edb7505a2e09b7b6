//! `verinfer devnet`: the whole rollup on a local anvil, every daemon a real process of this
//! binary, and the honest journey of every user played on it with progress shown; `--keep`
//! leaves it running for a person to use the other commands against.

use std::path::PathBuf;

use anyhow::Context;
use verinfer_e2e::{journey, Devnet, Model, Options};

/// `devnet`.
#[derive(clap::Args)]
pub struct Args {
    /// A Hugging Face checkpoint directory for the demo SKU (default: $VERINFER_SMOLLM2, the
    /// SmolLM2-135M-Instruct checkpoint `ops/setup.sh` converts, else a synthetic tiny Llama).
    #[arg(long)]
    model: Option<PathBuf>,
    /// A SKU file instead of a checkpoint.
    #[arg(long, conflicts_with = "model")]
    sku: Option<PathBuf>,
    /// Use the synthetic tiny Llama even when SmolLM2 is installed.
    #[arg(long, conflicts_with_all = ["model", "sku"])]
    synthetic: bool,
    /// State directory (default: a new temporary directory, removed at the end unless --keep).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Honest workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Prompts the buyer submits.
    #[arg(long, default_value_t = 4)]
    prompts: usize,
    /// Tokens generated per prompt.
    #[arg(long, default_value_t = 24)]
    max_tokens: u64,
    /// Skip the cheating worker (needs the `verinfer-faulty` binary next to this one).
    #[arg(long)]
    no_cheat: bool,
    /// Stay up after the journey until Ctrl-C.
    #[arg(long)]
    keep: bool,
    /// Print the summary as JSON on stdout.
    #[arg(long)]
    json: bool,
}

fn model(a: &Args) -> Model {
    if let Some(s) = &a.sku {
        return Model::SkuFile(s.clone());
    }
    if let Some(m) = &a.model {
        return Model::HfDir(m.clone());
    }
    match std::env::var_os("VERINFER_SMOLLM2").map(PathBuf::from) {
        Some(p) if !a.synthetic && p.join("config.json").exists() => Model::HfDir(p),
        _ => Model::Synthetic,
    }
}

/// `name` in this binary's directory, if it is there.
fn bin_dir_file(name: &str) -> Option<PathBuf> {
    let p = std::env::current_exe().ok()?.with_file_name(name);
    p.exists().then_some(p)
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let bin = std::env::current_exe().context("cannot find the verinfer binary")?;
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("verinfer-devnet-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let model = model(&a);
    let mut opts = Options::new(bin, dir.clone(), model.clone());
    opts.workers = a.workers;
    let faulty = bin_dir_file("verinfer-faulty");
    if !a.no_cheat {
        let Some(f) = faulty else {
            anyhow::bail!(
                "the cheating worker needs verinfer-faulty next to verinfer \
                 (cargo build -p verinfer --features fault-injection --bin verinfer-faulty), or pass --no-cheat"
            );
        };
        opts.faulty_bin = Some(f);
    }
    if matches!(model, Model::HfDir(_)) {
        opts.max_seq = 512;
    }
    let rt = tokio::runtime::Runtime::new()?;
    let mut say = |s: &str| eprintln!("[devnet] {s}");
    rt.block_on(async move {
        let work = async {
            let mut dev = Devnet::start(opts, &mut say).await?;
            let mut summary = journey::demo(&dev, a.prompts, a.max_tokens, &mut say).await?;
            if dev.opts.faulty_bin.is_some() {
                let who = dev.add_cheater("gemm-entry").await?;
                say(&format!(
                    "[cheat] worker {who} joins: the real worker with one fault injected (a wrong GEMM entry)"
                ));
                let c = verinfer_e2e::cheat::catch_cheat(&dev, &mut say).await?;
                summary.cheats.push(c);
            }
            Ok::<_, verinfer_e2e::DevnetError>((dev, summary))
        };
        let (dev, summary) = tokio::select! {
            r = work => r?,
            _ = tokio::signal::ctrl_c() => anyhow::bail!("interrupted: every process stopped"),
        };
        eprintln!("{summary}");
        if a.json {
            println!("{}", serde_json::to_string_pretty(&summary)?);
        }
        if a.keep {
            eprintln!("[devnet] staying up; state and logs in {}", dir.display());
            eprintln!("[devnet]   source {}/keys.env", dir.display());
            eprintln!("[devnet]   sequencer {}  L1 {}", dev.sequencer_url, dev.l1.url);
            eprintln!("[devnet]   e.g. VERINFER_KEY=$BUYER_KEY verinfer escrow show --deployment $VERINFER_DEPLOYMENT");
            eprintln!("[devnet] Ctrl-C stops every process");
            tokio::signal::ctrl_c().await?;
        }
        drop(dev);
        Ok(())
    })
}
