//! docs/ECONOMICS.md and docs/econ/*.svg are the report of the default config; this fails when
//! the committed copy drifts from what the code and ops/econ/default.toml produce.
//! Regenerate with `verinfer econ --out docs` (or `VERINFER_ECON_BLESS=1 cargo test -p
//! verinfer-econ --test docs`).

use std::collections::BTreeSet;
use std::path::Path;

use verinfer_econ::report::{PLOT_DIR, REPORT_FILE};
use verinfer_econ::{Config, Report};

fn names(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".svg"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn committed_economics_report_matches_the_default_config() {
    let cfg = Config::default_config().expect("default config");
    let report = Report::build(&cfg).expect("report");
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs");
    if std::env::var_os("VERINFER_ECON_BLESS").is_some() {
        report.write(&docs).expect("write docs");
    }
    let tmp = tempfile::tempdir().expect("temp dir");
    report.write(tmp.path()).expect("write report");

    let want = std::fs::read_to_string(tmp.path().join(REPORT_FILE)).unwrap();
    let have = std::fs::read_to_string(docs.join(REPORT_FILE)).unwrap_or_default();
    assert!(
        want == have,
        "docs/{REPORT_FILE} is stale: run `verinfer econ --out docs` and commit the result"
    );
    let (gen, committed) = (
        names(&tmp.path().join(PLOT_DIR)),
        names(&docs.join(PLOT_DIR)),
    );
    assert_eq!(
        gen, committed,
        "docs/{PLOT_DIR}/ must hold exactly the generated plots"
    );
    for n in &gen {
        let a = std::fs::read(tmp.path().join(PLOT_DIR).join(n)).unwrap();
        let b = std::fs::read(docs.join(PLOT_DIR).join(n)).unwrap();
        assert!(
            a == b,
            "docs/{PLOT_DIR}/{n} is stale: run `verinfer econ --out docs`"
        );
    }
}

#[test]
fn the_report_is_deterministic() {
    let cfg = Config::default_config().unwrap();
    assert_eq!(Report::build(&cfg).unwrap(), Report::build(&cfg).unwrap());
}

#[test]
fn the_report_follows_the_config_not_hard_coded_text() {
    // Near-free gas flips the price verdict; a tiny stake at a tiny audit rate makes fraud pay.
    let cheap_gas = verinfer_econ::DEFAULT_TOML
        .replacen(
            "gas_price_gwei = { value = 1.0,",
            "gas_price_gwei = { value = 0.000001,",
            1,
        )
        .replacen(
            "sample_rate = { value = 1.0,",
            "sample_rate = { value = 0.0001,",
            1,
        )
        .replacen(
            "stake_eth = { value = 1.0,",
            "stake_eth = { value = 0.000001,",
            1,
        );
    let cfg = Config::from_toml(&cheap_gas).unwrap();
    assert_eq!(cfg.l1.gas_price_gwei.value, 0.000001);
    let md = Report::build(&cfg).unwrap().markdown;
    assert!(
        md.contains("**Price: L1 gas fits under retail.**"),
        "price verdict follows gas"
    );
    assert!(
        md.contains("**Fraud:** **profitable**"),
        "fraud verdict follows stake and audit rate"
    );
    let default = Report::build(&Config::default_config().unwrap())
        .unwrap()
        .markdown;
    assert!(default.contains("**Price: the protocol loses as built.**"));
}
