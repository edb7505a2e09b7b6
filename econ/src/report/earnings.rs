//! Section 2: how steady a worker's income is, against PoW mining.

use super::{link, Section};
use crate::earnings::Network;
use crate::fmt::{pct, sig, usd, Table};
use crate::plot::{Legend, Plot, Series, Style};
use crate::{pow, Config, EconError};

/// Simulated blocks above which the pooled simulation is cut short (keeps CI fast).
const MAX_POOL_BLOCKS: f64 = 400_000.0;
/// Expected solo blocks needed before a solo simulation says anything.
const MIN_SOLO_BLOCKS: f64 = 100.0;

pub(crate) fn section(cfg: &Config) -> Result<Section, EconError> {
    let e = &cfg.earnings;
    let net = Network::from_config(cfg);
    let days = e.sim_days.value as usize;
    let seed = e.seed.value as u64;
    let mut md = String::from("## 2. A worker's income against PoW mining\n\n");
    md.push_str(&format!(
        "Each shard goes to one worker by a stake-weighted draw, so a worker with stake share σ \
         receives Binomial(S, σ) of the S = {} shards a day ({} tokens/day of demand); a shard \
         pays {} on average (its tokens at the price to beat), with a CV of {} across shards. A \
         receipt earns only if the chain draws it for audit (probability p: {} for an \
         established worker, {} for a new one, {} for a veteran), and then fee/p less the \
         verifier's {}; each audit goes to a stake-weighted verifier, paid {} of fee/p. So the \
         expected income is what the worker's shards paid, and CV² = [(1 − σp) + κ²]·[(1 − v)² + \
         v²] / (Sσp): sparse audits make income lumpier. The PoW miner earns the same expected income: solo, it finds Poisson(λ) blocks a \
         day, CV = 1/√λ; in a PPLNS pool, its payouts follow the pool's blocks, CV² ≈ (1 + \
         1/(shares in window)) / (pool blocks per day), treating successive windows as \
         independent. Closed forms are checked by a seeded simulation ({} days, seed {}; the \
         pooled one with real, overlapping windows).\n\n",
        sig(net.shards_per_day, 4),
        sig(e.network_tokens_per_day.value, 3),
        usd(net.fee_per_shard),
        sig(net.kappa, 2),
        pct(net.audit_rate),
        pct(cfg.audit.new_rate.value),
        pct(cfg.audit.veteran_rate.value),
        pct(net.verifier_fee),
        pct(net.verifier_fee),
        days,
        seed
    ));
    md.push_str(&income_table(cfg, &net, days, seed));
    md.push_str(&pool_table(cfg, &net, days, seed));
    md.push_str(&crossover_text(cfg, &net));
    let plot = cv_plot(cfg, &net, days, seed);
    md.push_str(&link(&plot));
    Ok(Section {
        markdown: md,
        plots: vec![plot],
        summary: summary(cfg, &net),
        losses: losses(cfg, &net),
    })
}

fn income_table(cfg: &Config, net: &Network, days: usize, seed: u64) -> String {
    let e = &cfg.earnings;
    let mut header: Vec<String> = [
        "stake share",
        "shards/day",
        "income/day",
        "protocol CV",
        "protocol CV (sim)",
        "P(epoch with no credited receipt)",
    ]
    .map(String::from)
    .to_vec();
    let tiers = [
        ("new worker", net.at_rate(cfg.audit.new_rate.value)),
        ("veteran", net.at_rate(cfg.audit.veteran_rate.value)),
    ];
    for (name, n) in &tiers {
        header.push(format!("protocol CV, {name} (p = {})", pct(n.audit_rate)));
    }
    for p in &e.pow {
        header.push(format!("{} solo CV", p.name));
        header.push(format!("{} solo: P(day with nothing)", p.name));
    }
    let mut t = Table::new(header);
    for (i, &sigma) in e.stake_share_grid.iter().enumerate() {
        let income = net.mean_income(sigma);
        let (_, sim_cv) = net.simulate(sigma, days, seed + i as u64);
        let mut row = vec![
            pct(sigma),
            sig(net.shards_per_day * sigma, 3),
            usd(income),
            sig(net.cv(sigma), 3),
            sig(sim_cv, 3),
            sig(net.p_idle_epoch(sigma, e.epoch_seconds.value), 3),
        ];
        row.extend(tiers.iter().map(|(_, n)| sig(n.cv(sigma), 3)));
        for p in &e.pow {
            row.push(sig(pow::solo_cv(p, income), 3));
            row.push(sig(pow::solo_p_zero_day(p, income), 3));
        }
        t.row(row);
    }
    format!(
        "Daily income and its coefficient of variation (CV = standard deviation / mean) by stake \
         share, for an established worker (p = {}; simulated) and the other audit tiers; the \
         solo miner earns the same expected income:\n\n{}\n{}",
        pct(net.audit_rate),
        t.render(),
        solo_check(cfg, net, days, seed)
    )
}

/// Solo closed form against simulation, where enough blocks are expected to say anything.
fn solo_check(cfg: &Config, net: &Network, days: usize, seed: u64) -> String {
    let mut t = Table::new([
        "network",
        "stake share",
        "λ blocks/day",
        "solo CV",
        "solo CV (sim)",
    ]);
    let mut any = false;
    for p in &cfg.earnings.pow {
        for (i, &sigma) in cfg.earnings.stake_share_grid.iter().enumerate() {
            let income = net.mean_income(sigma);
            let lambda = pow::solo_lambda(p, income);
            if lambda * days as f64 >= MIN_SOLO_BLOCKS {
                let (_, cv) = pow::simulate_solo(p, income, days, seed + 100 + i as u64);
                t.row([
                    p.name.clone(),
                    pct(sigma),
                    sig(lambda, 3),
                    sig(pow::solo_cv(p, income), 3),
                    sig(cv, 3),
                ]);
                any = true;
            }
        }
    }
    if any {
        format!("Solo mining, closed form against the simulation (where ≥ {MIN_SOLO_BLOCKS} blocks are expected):\n\n{}\n", t.render())
    } else {
        String::new()
    }
}

fn pool_table(cfg: &Config, net: &Network, days: usize, seed: u64) -> String {
    let mut t = Table::new([
        "network",
        "block value",
        "pool share",
        "pool blocks/day",
        "pooled CV",
        "pooled CV (sim, overlapping windows)",
        "days simulated",
    ]);
    for (i, p) in cfg.earnings.pow.iter().enumerate() {
        let lp = pow::pool_lambda(p);
        let sim_days = days.min((MAX_POOL_BLOCKS / lp).floor().max(1.0) as usize);
        let income = net.mean_income(cfg.earnings.stake_share_grid[0]);
        let (_, cv) = pow::simulate_pooled(p, income, sim_days, seed + 200 + i as u64);
        t.row([
            p.name.clone(),
            usd(p.block_value_usd.value),
            pct(p.pool_share.value),
            sig(lp, 4),
            sig(pow::pooled_cv(p), 3),
            sig(cv, 3),
            sim_days.to_string(),
        ]);
    }
    format!(
        "A PPLNS pool smooths the miner's income down to the pool's own luck, whatever the \
         miner's size (a PPS pool would remove even that, for a fee):\n\n{}\n",
        t.render()
    )
}

/// Stake share above which the protocol is steadier than each pooled miner (bisection on the
/// closed form, which falls with σ).
pub(crate) fn crossover(net: &Network, target_cv: f64) -> Option<f64> {
    let (mut lo, mut hi) = (1e-12_f64, 1.0_f64);
    if net.cv(hi) > target_cv {
        return None;
    }
    if net.cv(lo) <= target_cv {
        return Some(lo);
    }
    for _ in 0..200 {
        let mid = (lo * hi).sqrt();
        if net.cv(mid) > target_cv {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Some(hi)
}

fn crossover_text(cfg: &Config, net: &Network) -> String {
    let mut out = String::new();
    for p in &cfg.earnings.pow {
        let target = pow::pooled_cv(p);
        let line = match crossover(net, target) {
            Some(s) => format!(
                "- Against a pooled {} miner (CV {}): the protocol is steadier for stake shares above \
                 **{}** ({} shards a day); below that the pooled miner is steadier.\n",
                p.name,
                sig(target, 3),
                pct(s),
                sig(s * net.shards_per_day, 3)
            ),
            None => format!("- Against a pooled {} miner (CV {}): the pool is steadier at every stake share.\n", p.name, sig(target, 3)),
        };
        out.push_str(&line);
    }
    let solo_worse = cfg.earnings.stake_share_grid.iter().all(|&s| {
        cfg.earnings
            .pow
            .iter()
            .all(|p| pow::solo_cv(p, net.mean_income(s)) > net.cv(s))
    });
    let solo = if solo_worse {
        "Against solo mining the protocol is steadier at every stake share in the table."
    } else {
        "Against solo mining the protocol is **not** steadier at every stake share in the table (see the CVs)."
    };
    format!(
        "{solo} Against pools it depends on how many shards a worker gets a day:\n\n{out}\n\
         At small stakes the protocol has a risk PoW does not: an epoch with no credited receipt \
         earns nothing, and a worker below `min_credits` ({}) per epoch drops out of the active set.\n\n",
        sig(cfg.earnings.min_credits_per_epoch.value, 3)
    )
}

fn cv_plot(cfg: &Config, net: &Network, days: usize, seed: u64) -> Plot {
    let grid = &cfg.earnings.stake_share_grid;
    let (lo, hi) = (grid[0], grid[grid.len() - 1]);
    let xs: Vec<f64> = (0..=40)
        .map(|i| lo * (hi / lo).powf(i as f64 / 40.0))
        .collect();
    let mut series = vec![
        Series::new(
            "protocol (closed form)",
            xs.iter().map(|&s| (s, net.cv(s))).collect(),
            Style::Line,
        ),
        Series::new(
            "protocol (simulation)",
            grid.iter()
                .enumerate()
                .map(|(i, &s)| (s, net.simulate(s, days, seed + i as u64).1))
                .collect(),
            Style::Points,
        ),
    ];
    for p in &cfg.earnings.pow {
        let solo = xs
            .iter()
            .map(|&s| (s, pow::solo_cv(p, net.mean_income(s))))
            .collect();
        series.push(Series::new(format!("{} solo", p.name), solo, Style::Line));
        let pooled = pow::pooled_cv(p);
        series.push(Series::new(
            format!("{} pooled", p.name),
            vec![(lo, pooled), (hi, pooled)],
            Style::Dashed,
        ));
    }
    Plot {
        file: "income_cv_by_stake.svg".into(),
        title: "Daily income CV: protocol worker vs PoW miner (same expected income)".into(),
        x_label: "stake share (share of the SKU's shards)".into(),
        y_label: "coefficient of variation of daily income".into(),
        legend: Legend::MiddleRight,
        x_log: true,
        y_log: true,
        series,
    }
}

fn losses(cfg: &Config, net: &Network) -> Vec<String> {
    cfg.earnings
        .pow
        .iter()
        .filter_map(|p| {
            let s = crossover(net, pow::pooled_cv(p))?;
            (s > cfg.earnings.stake_share_grid[0]).then(|| {
                format!(
                    "**Income steadiness.** Below {} of the stake ({} shards a day), a pooled {} \
                     miner's income is steadier than a worker's.",
                    pct(s),
                    sig(s * net.shards_per_day, 3),
                    p.name
                )
            })
        })
        .collect()
}

fn summary(cfg: &Config, net: &Network) -> Vec<String> {
    let sigma = cfg.cheating.stake_share.value;
    let income = net.mean_income(sigma);
    let mut parts = vec![format!("protocol CV {}", sig(net.cv(sigma), 2))];
    for p in &cfg.earnings.pow {
        parts.push(format!(
            "{} solo {} / pooled {}",
            p.name,
            sig(pow::solo_cv(p, income), 2),
            sig(pow::pooled_cv(p), 2)
        ));
    }
    let cross: Vec<String> = cfg
        .earnings
        .pow
        .iter()
        .map(|p| match crossover(net, pow::pooled_cv(p)) {
            Some(s) => format!("{} pools above {} of the stake", p.name, pct(s)),
            None => format!("{} pools never", p.name),
        })
        .collect();
    vec![format!(
        "**Income steadiness:** a worker with {} of the stake earns {} a day with {}. The protocol \
         beats {}.",
        pct(sigma),
        usd(income),
        parts.join(", "),
        cross.join(" and ")
    )]
}
