//! Section 3: the expected value of cheating.

use super::{link, Section};
use crate::cheating::{collusion_detection, collusion_min_stake, full_detection, Cheater, Fake};
use crate::fmt::{count, pct, sig, usd, Table};
use crate::plot::{Legend, Plot, Series, Style};
use crate::{Config, EconError};

pub(crate) fn section(cfg: &Config) -> Result<Section, EconError> {
    let ch = Cheater::from_config(cfg);
    let d = full_detection(cfg);
    let c = &cfg.cheating;
    let mut md = String::from("## 3. Is fraud economically irrational?\n\n");
    md.push_str(&format!(
        "A cheater fakes a share of its shards. A faked shard saves {} ({} of its {} fee: the \
         honest work skipped); it is caught with probability q = (audit rate)^(k+1) × P(the \
         audit sees the fake), where k = {} is the number of proposer slots the cheater controls \
         to pick the audit seed (docs/AUDITS.md; a full fake is seen with probability 1 − {} per \
         round). A caught shard is \
         refunded to the buyer and slashes {} of the stake left (once per receipt; {} ETH = {} \
         bonded). The horizon is {} days ({}): a worker with {} of the stake gets {} shards in it. \
         Over n faked shards, EV = n(G − qF) − S(1 − (1 − q·f)ⁿ) (exact, since E[(1−f)^K] = \
         (1 − q·f)ⁿ for K ~ Binomial(n, q)); EV is convex in n, so if it is negative at cheating \
         rate 1 it is negative at every rate. Strikes (removal after {} lost games) are left out, \
         which favours the cheater. A sequencer that stopped assigning shards to a worker with an open \
         fraud game would shorten the horizon to the audit delay. The fee, and so every stake and EV below, scales with the price per \
         token (here the price to beat): at k times the fee, multiply them by k.\n\n",
        usd(ch.gain),
        pct(c.saved_share_of_fee.value),
        usd(ch.fee),
        count(cfg.audit.seed_controlled_slots.value),
        sig(c.freivalds_miss.value, 2),
        pct(ch.slash),
        sig(c.stake_eth.value, 3),
        usd(ch.stake),
        sig(c.horizon_days.value, 3),
        c.horizon_days.source,
        pct(c.stake_share.value),
        count(ch.horizon_shards),
        count(c.max_strikes.value),
    ));
    md.push_str(&ev_table(cfg, &ch, d));
    md.push_str(&zero_stake_text(cfg, &ch, d));
    md.push_str(&selective_table(cfg, &ch));
    md.push_str(&collusion_tables(cfg, &ch, d));
    let plots = vec![ev_plot(cfg, &ch, d), stake_plot(cfg, &ch, d)];
    for p in &plots {
        md.push_str(&link(p));
    }
    Ok(Section {
        markdown: md,
        plots,
        summary: summary(cfg, &ch, d),
        losses: losses(cfg, &ch, d),
    })
}

fn ev_table(cfg: &Config, ch: &Cheater, d: f64) -> String {
    let c = &cfg.cheating;
    let mut header = vec!["audit rate".to_string()];
    header.extend(
        c.cheat_rate_grid
            .iter()
            .map(|r| format!("EV, cheat {}", pct(*r))),
    );
    header.extend(
        [
            "min stake (horizon)",
            "min stake (one receipt)",
            "min slash at this stake",
        ]
        .map(String::from),
    );
    let mut t = Table::new(header);
    for &s in &c.sample_rate_grid {
        let q = eff(cfg, s) * d;
        let mut row = vec![pct(s)];
        row.extend(c.cheat_rate_grid.iter().map(|&r| usd(ch.ev_rate(r, q))));
        row.push(usd(ch.min_stake(ch.horizon_shards, q)));
        row.push(usd(ch.min_stake(1.0, q)));
        row.push(ch.min_slash(q).map_or("none suffices".into(), pct));
        t.row(row);
    }
    format!(
        "Expected value of cheating over the horizon (USD; negative = cheating loses) for every \
         cheating rate and every audit rate, with the stake and slash that make it negative at \
         cheating rate 100%:\n\n{}\n",
        t.render()
    )
}

fn zero_stake_text(cfg: &Config, ch: &Cheater, d: f64) -> String {
    let s = ch.zero_stake_sample_rate(d).map(|e| nominal(cfg, e));
    let at = cfg.audit.sample_rate.value;
    let verdict = if ch.ev_rate(1.0, eff(cfg, at) * d) < 0.0 {
        format!(
            "At the configured audit rate ({}) cheating loses at every cheating rate.",
            pct(at)
        )
    } else {
        format!(
            "**At the configured audit rate ({}) full cheating pays.**",
            pct(at)
        )
    };
    let refund = match s {
        Some(s) => format!("Refunds alone make cheating lose (with no stake at all) at audit rates above {}.", pct(s)),
        None => "Refunds alone never make cheating lose: the saving is at least the fee, so stake must do it.".into(),
    };
    format!(
        "{verdict} {refund} The audit rate needed at the configured stake is {}.\n\n",
        min_rate_text(cfg, ch, d)
    )
}

/// Least audit rate at which full cheating over the horizon loses at the configured stake.
pub(crate) fn min_audit_rate(cfg: &Config, ch: &Cheater, d: f64) -> Option<f64> {
    let ev = |s: f64| ch.ev(ch.horizon_shards, eff(cfg, s) * d);
    if ev(1.0) >= 0.0 {
        return None;
    }
    let (mut lo, mut hi) = (0.0, 1.0);
    for _ in 0..100 {
        let mid = 0.5 * (lo + hi);
        if ev(mid) >= 0.0 {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

fn min_rate_text(cfg: &Config, ch: &Cheater, d: f64) -> String {
    min_audit_rate(cfg, ch, d).map_or("above 100% (no audit rate suffices)".into(), |s| {
        format!("**{}**", pct(s))
    })
}

fn selective_table(cfg: &Config, ch: &Cheater) -> String {
    let s = cfg.audit.sample_rate.value;
    let fakes = [
        Fake::All,
        Fake::MlpSteps(1.0),
        Fake::MlpSteps(0.1),
        Fake::MlpSteps(0.01),
        Fake::Attention,
    ];
    let mut t = Table::new([
        "policy",
        "faked",
        "saving/shard",
        "P(seen if audited)",
        "EV per faked receipt",
        "min stake (one receipt)",
        "refunds alone deter above audit rate",
    ]);
    for p in &cfg.cheating.policy {
        for f in fakes {
            let sel = Cheater {
                gain: ch.gain * f.saving_share(cfg),
                ..*ch
            };
            let det = f.detection(cfg, p);
            let q = eff(cfg, s) * det;
            t.row([
                p.name.clone(),
                f.label(),
                usd(sel.gain),
                sig(det, 3),
                usd(sel.ev(1.0, q)),
                usd(sel.min_stake(1.0, q)),
                sel.zero_stake_sample_rate(det)
                    .map_or("never".into(), |e| pct(nominal(cfg, e))),
            ]);
        }
    }
    format!(
        "Selective cheating: faking only part of a shard saves less but may escape the audit. \
         Per faked receipt at the configured audit rate ({}) and stake, by watcher GEMM policy \
         (`--gemms`). A fake that an audit never sees (P = 0) cannot be deterred by stake: the \
         policy must look there.\n\n{}\n",
        pct(s),
        t.render()
    )
}

fn collusion_tables(cfg: &Config, ch: &Cheater, d: f64) -> String {
    let col = &cfg.cheating.collusion;
    let s = cfg.audit.sample_rate.value;
    let vslash = col.verifier_stake_eth.value * cfg.l1.eth_usd.value * col.verifier_slash_bps.value
        / 10_000.0;
    let table = |vs: f64| {
        let mut header = vec!["colluding verifier share".to_string()];
        header.extend(
            col.watcher_rate_grid
                .iter()
                .map(|w| format!("watcher audits {}", pct(*w))),
        );
        let mut t = Table::new(header);
        for &v in &col.colluding_share_grid {
            let mut row = vec![pct(v)];
            for &w in &col.watcher_rate_grid {
                let q = collusion_detection(eff(cfg, s), v, w, d);
                row.push(format!(
                    "q {} / {}",
                    sig(q, 3),
                    usd(collusion_min_stake(ch, eff(cfg, s), v, w, d, vs))
                ));
            }
            t.row(row);
        }
        t.render()
    };
    format!(
        "Collusion with the verifier (docs/AUDITS.md: each audit goes to a stake-weighted verifier). A sampled \
         audit lands on a bribed verifier with probability equal to the colluders' share of \
         verifier stake, and passes; an independent watcher audits any receipt with its own \
         probability. Cells: detection per faked receipt q / least worker stake that makes the \
         pair lose on one receipt. With the bribed verifier slashed {} ({} of {} ETH) when the \
         watcher catches a receipt it passed ({}):\n\n{}\n\
         Without the verifier's slash (a bribe that covers it):\n\n{}\n\
         Where every audit lands on a colluder and no independent watcher looks, q = 0 and no \
         stake deters: the protocol's defence is that anyone may watch (the watcher is \
         permissionless), not the assignment.\n\n",
        usd(vslash),
        pct(col.verifier_slash_bps.value / 10_000.0),
        sig(col.verifier_stake_eth.value, 3),
        col.verifier_slash_bps.source,
        table(vslash),
        table(0.0)
    )
}

/// The audit probability a cheater faces at nominal rate `s` (seed bias, docs/AUDITS.md).
fn eff(cfg: &Config, s: f64) -> f64 {
    crate::price::effective_rate(cfg, s)
}

/// The nominal audit rate whose effective rate is `e`.
fn nominal(cfg: &Config, e: f64) -> f64 {
    e.powf(1.0 / (cfg.audit.seed_controlled_slots.value + 1.0))
}

/// sign(y)·log10(1 + |y|): EV spans losses of the whole stake and gains of cents.
fn symlog(y: f64) -> f64 {
    y.signum() * (1.0 + y.abs()).log10()
}

fn ev_plot(cfg: &Config, ch: &Cheater, d: f64) -> Plot {
    let xs: Vec<f64> = (0..=50).map(|i| i as f64 / 50.0).collect();
    let series = cfg
        .cheating
        .sample_rate_grid
        .iter()
        .map(|&s| {
            let pts = xs
                .iter()
                .map(|&c| (c, symlog(ch.ev_rate(c, eff(cfg, s) * d))))
                .collect();
            Series::new(format!("audit {}", pct(s)), pts, Style::Line)
        })
        .collect();
    Plot {
        file: "cheating_ev.svg".into(),
        title: "EV of cheating over the horizon, by audit rate".into(),
        x_label: "cheating rate (share of shards faked)".into(),
        y_label: "sign(EV)·log10(1 + |EV in USD|)".into(),
        legend: Legend::UpperRight,
        x_log: false,
        y_log: false,
        series,
    }
}

fn stake_plot(cfg: &Config, ch: &Cheater, d: f64) -> Plot {
    let grid = &cfg.cheating.sample_rate_grid;
    let (lo, hi) = (grid[0], grid[grid.len() - 1]);
    let xs: Vec<f64> = (0..=40)
        .map(|i| lo * (hi / lo).powf(i as f64 / 40.0))
        .collect();
    let horizon = xs
        .iter()
        .map(|&s| (s, ch.min_stake(ch.horizon_shards, eff(cfg, s) * d)))
        .collect();
    let one = xs
        .iter()
        .map(|&s| (s, ch.min_stake(1.0, eff(cfg, s) * d)))
        .collect();
    Plot {
        file: "min_stake_by_audit_rate.svg".into(),
        title: "Least stake that makes full cheating lose (zero where refunds suffice: not drawn)"
            .into(),
        x_label: "audit rate (share of receipts audited)".into(),
        y_label: "stake, USD".into(),
        legend: Legend::LowerLeft,
        x_log: true,
        y_log: true,
        series: vec![
            Series::new("over the horizon", horizon, Style::Line),
            Series::new("one receipt", one, Style::Line),
            Series::new(
                "configured stake",
                vec![(lo, ch.stake), (hi, ch.stake)],
                Style::Dashed,
            ),
        ],
    }
}

fn losses(cfg: &Config, ch: &Cheater, d: f64) -> Vec<String> {
    let mut out = Vec::new();
    let paying: Vec<String> = cfg
        .cheating
        .sample_rate_grid
        .iter()
        .filter(|&&s| ch.ev_rate(1.0, eff(cfg, s) * d) > 0.0)
        .map(|&s| pct(s))
        .collect();
    if !paying.is_empty() {
        out.push(format!(
            "**Fraud.** At the configured stake, full cheating pays at audit rates {}.",
            paying.join(", ")
        ));
    }
    for p in &cfg.cheating.policy {
        if Fake::Attention.detection(cfg, p) == 0.0 {
            out.push(format!(
                "**Fraud.** Under the `{}` GEMM policy a fake confined to the attention GEMMs is \
                 never seen by a Freivalds audit (no stake deters it).",
                p.name
            ));
        }
    }
    out.push(
        "**Collusion.** A worker whose audits all land on bribed verifiers is caught only by \
         independent watchers; with none, detection is zero."
            .into(),
    );
    out
}

fn summary(cfg: &Config, ch: &Cheater, d: f64) -> Vec<String> {
    let at = cfg.audit.sample_rate.value;
    let holds = ch.ev_rate(1.0, eff(cfg, at) * d) < 0.0;
    let blind: Vec<&str> = cfg
        .cheating
        .policy
        .iter()
        .filter(|p| Fake::Attention.detection(cfg, p) == 0.0)
        .map(|p| p.name.as_str())
        .collect();
    let blind = if blind.is_empty() {
        String::new()
    } else {
        format!(
            " Faking only the attention GEMMs is never seen under the `{}` policies.",
            blind.join("`, `")
        )
    };
    vec![format!(
        "**Fraud:** {} at the configured audit rate ({}) and stake ({}); at that stake, cheating \
         loses at every cheating rate for audit rates above {}.{blind} Collusion with an \
         assigned verifier is caught only by independent watchers (section 3).",
        if holds {
            "irrational"
        } else {
            "**profitable**"
        },
        pct(at),
        usd(ch.stake),
        min_rate_text(cfg, ch, d)
    )]
}
