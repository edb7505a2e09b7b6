//! Section 4: griefing an honest worker with disputes.

use super::{link, Section};
use crate::fmt::{count, sig, usd, Table};
use crate::griefing::{self, Grief};
use crate::plot::{Legend, Plot, Series, Style};
use crate::{Config, EconError};

pub(crate) fn section(cfg: &Config) -> Result<Section, EconError> {
    let g = &cfg.griefing;
    let (lost, reward) = griefing::bonds(cfg);
    let mut md = String::from("## 4. Griefing an honest worker\n\n");
    md.push_str(&format!(
        "An attacker opens a dispute on an honest receipt and plays it to the end ({} bisection \
         rounds, then the one-step proof, which the worker wins). The attacker spends {} gas \
         (`open`, {} × `choose`, `nameEntry`) and loses {} ETH of bonds (the {} ETH opening bond \
         and {} ETH per move); the worker spends {} gas ({} × `bisect` + `proveGemm`; up to {} \
         with the most expensive one-step answer) and about {} of GPU time replaying the shard, \
         and receives {} ETH (its share of the opening bond plus the attacker's move bonds). While \
         the game runs, the batch cannot finalize: every worker in it waits up to the game's \
         maximum duration for its fees (a delay, not a loss).\n\n",
        count(g.bisection_rounds.value),
        count(griefing::attacker_gas(cfg)),
        count(g.bisection_rounds.value),
        sig(lost, 3),
        sig(g.min_bond_eth.value, 3),
        sig(g.move_bond_eth.value, 3),
        count(griefing::defender_gas(cfg, g.prove_gas.value)),
        count(g.bisection_rounds.value),
        count(griefing::defender_gas(cfg, g.worst_prove_gas.value)),
        usd(griefing::defender_compute(cfg)),
        sig(reward, 3),
    ));
    let rows: Vec<Grief> = g
        .gas_price_grid
        .iter()
        .map(|&gw| griefing::at(cfg, gw))
        .collect();
    md.push_str(&table(&rows));
    md.push_str(&break_even_text(cfg, &rows));
    let plot = plot(&rows);
    md.push_str(&link(&plot));
    Ok(Section {
        markdown: md,
        plots: vec![plot],
        summary: summary(cfg),
        losses: vec![format!(
            "**Griefing.** Above {} gwei ({} with the most expensive one-step answer) a griefing \
             game costs the honest defender more than it receives.",
            sig(
                griefing::defender_break_even_gwei(cfg, cfg.griefing.prove_gas.value),
                3
            ),
            sig(
                griefing::defender_break_even_gwei(cfg, cfg.griefing.worst_prove_gas.value),
                3
            )
        )],
    })
}

fn table(rows: &[Grief]) -> String {
    let mut t = Table::new([
        "gas price (gwei)",
        "attacker loses",
        "defender spends",
        "defender spends (worst answer)",
        "defender receives",
        "defender net",
        "defender net (worst answer)",
        "attacker cost / defender cost",
    ]);
    for r in rows {
        t.row([
            sig(r.gwei, 3),
            usd(r.attacker_cost),
            usd(r.defender_cost),
            usd(r.defender_cost_worst),
            usd(r.defender_reward),
            usd(r.defender_net()),
            usd(r.defender_net_worst()),
            sig(r.attacker_cost / r.defender_cost, 3),
        ]);
    }
    format!("Per griefing game, by L1 gas price:\n\n{}\n", t.render())
}

fn break_even_text(cfg: &Config, rows: &[Grief]) -> String {
    let g = &cfg.griefing;
    let attacker_pays_more = rows.iter().all(|r| r.attacker_cost > r.defender_cost_worst);
    let compare = if attacker_pays_more {
        "though at every gas price in the table it costs the attacker more"
    } else {
        "and at some gas prices in the table **more than it costs the attacker**"
    };
    let typical = griefing::defender_break_even_gwei(cfg, g.prove_gas.value);
    let worst = griefing::defender_break_even_gwei(cfg, g.worst_prove_gas.value);
    format!(
        "The honest defender comes out ahead of a griefing game below **{} gwei** (`proveGemm`) \
         and below **{} gwei** with the most expensive one-step answer; above that, griefing \
         costs the defender money, {compare}.\n\n",
        sig(typical, 3),
        sig(worst, 3)
    )
}

fn plot(rows: &[Grief]) -> Plot {
    let pick = |f: fn(&Grief) -> f64| rows.iter().map(|r| (r.gwei, f(r))).collect::<Vec<_>>();
    Plot {
        file: "griefing_costs.svg".into(),
        title: "Griefing game: what each side spends, by gas price".into(),
        x_label: "gas price, gwei".into(),
        y_label: "USD per game".into(),
        legend: Legend::LowerRight,
        x_log: true,
        y_log: true,
        series: vec![
            Series::new("attacker loses", pick(|r| r.attacker_cost), Style::Line),
            Series::new("defender spends", pick(|r| r.defender_cost), Style::Line),
            Series::new(
                "defender spends (worst answer)",
                pick(|r| r.defender_cost_worst),
                Style::Line,
            ),
            Series::new(
                "defender receives",
                pick(|r| r.defender_reward),
                Style::Dashed,
            ),
        ],
    }
}

fn summary(cfg: &Config) -> Vec<String> {
    let g = griefing::at(cfg, cfg.l1.gas_price_gwei.value);
    vec![format!(
        "**Griefing:** at {} gwei a griefing game costs the attacker {} and leaves the honest \
         worker {} {} (gas and GPU time against its share of the bonds); the worker stays ahead \
         up to {} gwei.",
        sig(g.gwei, 3),
        usd(g.attacker_cost),
        if g.defender_net() >= 0.0 {
            "ahead by"
        } else {
            "behind by"
        },
        usd(g.defender_net().abs()),
        sig(
            griefing::defender_break_even_gwei(cfg, cfg.griefing.prove_gas.value),
            3
        )
    )]
}
