//! Section 1: the buyer's price against retail.

use super::{link, Section};
use crate::fmt::{count, pct, sig, usd, Table};
use crate::plot::{Legend, Plot, Series, Style};
use crate::price::{self, PER_M};
use crate::{Config, EconError};

pub(crate) fn section(cfg: &Config) -> Result<Section, EconError> {
    let p = price::packing(cfg);
    let (reference, best) = price::reference(cfg);
    let audit = price::audit_shares(cfg);
    let l1 = &cfg.l1;
    let gwei = l1.gas_price_gwei.value;
    let gas = price::gas_per_token(cfg, p.tokens_per_receipt, p.input_share)
        * price::usd_per_gas(cfg, gwei);
    let blob = price::blob_usd_per_token(cfg, p.tokens_per_receipt, p.input_share);

    let mut md = String::from("## 1. The buyer's price against retail\n\n");
    md.push_str(&format!(
        "A request is {} prompt + {} generated tokens; the sequencer packs {} requests into a \
         shard, so a receipt carries {} tokens. The inbox charges per processed token, so \
         retail prices are blended over the same shape ({} of the tokens are prompt tokens).\n\n",
        count(cfg.workload.prompt_tokens.value),
        count(cfg.workload.output_tokens.value),
        count(p.requests_per_receipt),
        count(p.tokens_per_receipt),
        pct(p.input_share)
    ));
    md.push_str(&retail_table(cfg, best.provider.as_str(), &best.model));
    md.push_str(&format!(
        "The price to beat is the cheapest line: **{} per 1M tokens** ({} {}).\n\n",
        usd(reference * PER_M),
        best.provider,
        best.model
    ));
    md.push_str(&gas_text(cfg, gas, blob, reference));
    md.push_str(&audit_text(cfg, &audit));
    md.push_str(&price_table(cfg, audit.freivalds));
    md.push_str(&break_even_table(cfg, &audit, reference));
    md.push_str(&cpu_text(cfg, reference));
    md.push_str(&gas_grid_table(cfg, p.input_share, reference));
    let plots = vec![
        tps_plot(cfg, audit.freivalds, reference),
        receipt_plot(cfg, p.input_share, reference),
    ];
    for pl in &plots {
        md.push_str(&link(pl));
    }
    Ok(Section {
        markdown: md,
        plots,
        summary: summary(cfg, gas, blob, reference, &audit),
        losses: losses(cfg, gas, blob, reference, &audit),
    })
}

fn retail_table(cfg: &Config, best_provider: &str, best_model: &str) -> String {
    let mut t = Table::new([
        "provider",
        "model",
        "input $/1M",
        "output $/1M",
        "batch discount",
        "blended list $/1M",
        "blended batch $/1M",
        "source",
    ]);
    for r in &cfg.retail {
        let (list, batch) = price::blended(cfg, r);
        let mark = if r.provider == best_provider && r.model == best_model {
            " **(cheapest)**"
        } else {
            ""
        };
        t.row([
            r.provider.clone(),
            format!("{}{mark}", r.model),
            sig(r.input_usd_per_m.value, 3),
            sig(r.output_usd_per_m.value, 3),
            pct(r.batch_discount.value),
            sig(list * PER_M, 3),
            sig(batch * PER_M, 3),
            format!("{}; {}", r.input_usd_per_m.source, r.batch_discount.source),
        ]);
    }
    format!(
        "Retail and batch API prices for the same model class (as of the dates cited; **update \
         them** before relying on the comparison):\n\n{}\n",
        t.render()
    )
}

fn gas_text(cfg: &Config, gas: f64, blob: f64, reference: f64) -> String {
    let l1 = &cfg.l1;
    let p = price::packing(cfg);
    let per_receipt = price::receipt_gas(cfg);
    let calldata =
        p.input_share * cfg.workload.input_bytes_per_token.value * l1.input_gas_per_byte.value;
    let verdict = if gas > reference {
        format!(
            "**This alone is {}× the price to beat: as built, the protocol is not cheaper than \
             retail inference.**",
            sig(gas / reference, 3)
        )
    } else {
        format!("This is {} of the price to beat.", pct(gas / reference))
    };
    format!(
        "**L1 gas per token.** Each receipt costs {} gas to post (measured worst case), {} to \
         draw its audit, {} for the verifier's report (per audited receipt, at a {} audit rate) \
         and {} to finalize, i.e. {} gas per token at {} tokens per receipt; the prompts are posted as \
         calldata for data availability, {} bytes per token at {} gas per byte, i.e. {} gas per \
         processed token. At {} gwei and {} per ETH that is **{} per 1M tokens**. {}\n\n\
         What-if (not implemented): with the prompts in EIP-4844 blobs ({} blob gas per byte at \
         {} gwei) the L1 cost would be {} per 1M tokens ({}× the price to beat). {}\n\n",
        count(l1.post_gas_per_receipt.value),
        count(l1.draw_gas_per_receipt.value),
        count(l1.report_gas_per_audit.value),
        pct(cfg.audit.sample_rate.value),
        count(l1.finalize_gas_per_receipt.value),
        sig(per_receipt / p.tokens_per_receipt, 3),
        count(p.tokens_per_receipt),
        count(cfg.workload.input_bytes_per_token.value),
        sig(l1.input_gas_per_byte.value, 3),
        sig(calldata, 3),
        sig(l1.gas_price_gwei.value, 3),
        usd(l1.eth_usd.value),
        usd(gas * PER_M),
        verdict,
        count(l1.blob_gas_per_byte.value),
        sig(l1.blob_gas_price_gwei.value, 3),
        usd(blob * PER_M),
        sig(blob / reference, 3),
        receipt_budget(cfg, reference),
    )
}

/// With prompts in blobs, the most gas a receipt could use (post + finalize) and still fit
/// under `target` per token at the default receipt size and gas price.
fn receipt_budget(cfg: &Config, target: f64) -> String {
    let l1 = &cfg.l1;
    let p = price::packing(cfg);
    let blob = p.input_share
        * cfg.workload.input_bytes_per_token.value
        * l1.blob_gas_per_byte.value
        * price::usd_per_gas(cfg, l1.blob_gas_price_gwei.value);
    let per_receipt = price::receipt_gas(cfg);
    let budget =
        (target - blob) / price::usd_per_gas(cfg, l1.gas_price_gwei.value) * p.tokens_per_receipt;
    if budget <= 0.0 {
        return "Even the blob data alone would cost more than the price to beat.".into();
    }
    format!(
        "To fit under the price to beat with blobs, a receipt could use at most {} gas to post \
         and finalize at this size and gas price (it uses {}), or would need {} tokens at its \
         present gas.",
        count(budget),
        count(per_receipt),
        count(per_receipt / budget * p.tokens_per_receipt)
    )
}

fn audit_text(cfg: &Config, a: &price::AuditShares) -> String {
    let s = cfg.audit.sample_rate.value;
    format!(
        "**Audit cost.** An audit of one shard at the `Mlp` depth (the MLP GEMMs checked by \
         Freivalds with {} round(s), plus re-hashing the tensors fetched) costs {} of the \
         shard's inference time; the audit protocol draws {} of an established worker's \
         receipts (new workers: all of them), so audits add {} to the \
         compute bill (PRD target: verification < 5% of inference: {}). Today's daemon audits by \
         re-execution ({} of the shard), which at this sampling adds {}.\n\n",
        count(cfg.audit.rounds.value),
        pct(a.freivalds),
        pct(s),
        pct(s * a.freivalds),
        if s * a.freivalds < 0.05 {
            "met"
        } else {
            "**not met**"
        },
        pct(a.reexecution),
        pct(s * a.reexecution),
    )
}

fn price_table(cfg: &Config, audit_share: f64) -> String {
    let mut header = vec!["tokens/s".to_string()];
    for h in &cfg.hardware {
        header.push(format!("{}: compute + audit", h.name));
        header.push(format!("{}: with L1 gas", h.name));
    }
    let mut t = Table::new(header);
    for &tps in &cfg.grids.tokens_per_s {
        let mut row = vec![sig(tps, 3)];
        for h in &cfg.hardware {
            let b = price::breakdown(cfg, h.usd_per_hour.value, tps, audit_share);
            row.push(usd((b.compute + b.audit) * PER_M));
            row.push(usd(b.total() * PER_M));
        }
        t.row(row);
    }
    format!(
        "Price per 1M tokens (the cost floor, no margin) by throughput. The project has not \
         measured tokens/s on these GPUs, so throughput is the table's axis, not an assumption:\n\n{}\n",
        t.render()
    )
}

fn break_even_table(cfg: &Config, a: &price::AuditShares, reference: f64) -> String {
    let show =
        |x: Option<f64>| x.map_or("never (L1 gas alone costs more)".to_string(), |v| sig(v, 3));
    let mut t = Table::new([
        "hardware",
        "$/h",
        "break-even tokens/s, as built",
        "break-even tokens/s if L1 gas were free (Freivalds audits)",
        "same with re-execution audits",
    ]);
    for h in &cfg.hardware {
        let usd_h = h.usd_per_hour.value;
        let free =
            |share: f64| usd_h / 3600.0 * (1.0 + cfg.audit.sample_rate.value * share) / reference;
        t.row([
            h.name.clone(),
            sig(usd_h, 3),
            show(price::break_even_tokens_per_s(
                cfg,
                usd_h,
                a.freivalds,
                reference,
            )),
            sig(free(a.freivalds), 3),
            sig(free(a.reexecution), 3),
        ]);
    }
    format!(
        "Break-even throughput: the tokens/s a GPU must sustain (prompt + generated, averaged) \
         for the cost floor to equal the price to beat ({} per 1M):\n\n{}\n",
        usd(reference * PER_M),
        t.render()
    )
}

fn cpu_text(cfg: &Config, reference: f64) -> String {
    let tps = price::measured_cpu_tokens_per_s(cfg);
    let usd_h = reference * tps * 3600.0;
    format!(
        "For scale, the only throughput the project measured at Llama-3-8B dimensions is its \
         CPU engine on the 2-vCPU development VM: {} tokens/s for one layer, i.e. about {} \
         tokens/s for all {} layers. At that rate a machine would have to cost under {} per hour \
         to match the price to beat on compute alone.\n\n",
        sig(cfg.measured_cpu.one_layer_tokens_per_s.value, 4),
        sig(tps, 3),
        count(cfg.measured_cpu.layers.value),
        usd(usd_h)
    )
}

fn gas_grid_table(cfg: &Config, input_share: f64, reference: f64) -> String {
    let mut header = vec!["tokens per receipt".to_string()];
    header.extend(
        cfg.grids
            .gas_price_gwei
            .iter()
            .map(|g| format!("{} gwei", sig(*g, 2))),
    );
    let mut t = Table::new(header);
    for &n in &cfg.grids.tokens_per_receipt {
        let mut row = vec![sig(n, 3)];
        for &g in &cfg.grids.gas_price_gwei {
            row.push(usd(price::gas_per_token(cfg, n, input_share)
                * price::usd_per_gas(cfg, g)
                * PER_M));
        }
        t.row(row);
    }
    let receipt_only = price::break_even_tokens_per_receipt(cfg, input_share, reference);
    let p = price::packing(cfg);
    let gwei = price::break_even_gwei(cfg, p.tokens_per_receipt, input_share, reference);
    let receipts = match receipt_only {
        Some(n) => format!("at {} gwei a receipt would need {} tokens for its gas to fit", sig(cfg.l1.gas_price_gwei.value, 3), sig(n, 3)),
        None => format!(
            "at {} gwei no receipt size helps: the prompt calldata alone costs more than the price to beat",
            sig(cfg.l1.gas_price_gwei.value, 3)
        ),
    };
    format!(
        "L1 gas per 1M tokens by receipt size and gas price (small receipts make the per-receipt \
         gas dominate; the prompt calldata is a floor that no receipt size removes):\n\n{}\n\
         Break-even: with free compute, L1 gas alone equals the price to beat at **{} gwei** for \
         {}-token receipts; {}.\n\n",
        t.render(),
        sig(gwei, 3),
        count(p.tokens_per_receipt),
        receipts
    )
}

fn tps_plot(cfg: &Config, audit_share: f64, reference: f64) -> Plot {
    let grid = &cfg.grids.tokens_per_s;
    let (lo, hi) = (grid[0], grid[grid.len() - 1]);
    let xs: Vec<f64> = (0..=40)
        .map(|i| lo * (hi / lo).powf(i as f64 / 40.0))
        .collect();
    let mut series = Vec::new();
    for h in &cfg.hardware {
        let at = |tps: f64| price::breakdown(cfg, h.usd_per_hour.value, tps, audit_share);
        series.push(Series::new(
            format!("{} with L1 gas", h.name),
            xs.iter().map(|&x| (x, at(x).total() * PER_M)).collect(),
            Style::Line,
        ));
        series.push(Series::new(
            format!("{} compute + audit", h.name),
            xs.iter()
                .map(|&x| (x, (at(x).compute + at(x).audit) * PER_M))
                .collect(),
            Style::Dashed,
        ));
    }
    series.push(Series::new(
        "cheapest retail/batch",
        vec![(lo, reference * PER_M), (hi, reference * PER_M)],
        Style::Dashed,
    ));
    Plot {
        file: "price_vs_tokens_per_s.svg".into(),
        title: "Buyer's price per 1M tokens vs GPU throughput".into(),
        x_label: "tokens/s per GPU (not measured: axis)".into(),
        y_label: "USD per 1M tokens".into(),
        legend: Legend::LowerLeft,
        x_log: true,
        y_log: true,
        series,
    }
}

fn receipt_plot(cfg: &Config, input_share: f64, reference: f64) -> Plot {
    let grid = &cfg.grids.tokens_per_receipt;
    let (lo, hi) = (grid[0], grid[grid.len() - 1]);
    let xs: Vec<f64> = (0..=40)
        .map(|i| lo * (hi / lo).powf(i as f64 / 40.0))
        .collect();
    let mut series: Vec<Series> = cfg
        .grids
        .gas_price_gwei
        .iter()
        .map(|&g| {
            let pts = xs
                .iter()
                .map(|&n| {
                    (
                        n,
                        price::gas_per_token(cfg, n, input_share)
                            * price::usd_per_gas(cfg, g)
                            * PER_M,
                    )
                })
                .collect();
            Series::new(format!("{} gwei", sig(g, 2)), pts, Style::Line)
        })
        .collect();
    series.push(Series::new(
        "cheapest retail/batch",
        vec![(lo, reference * PER_M), (hi, reference * PER_M)],
        Style::Dashed,
    ));
    Plot {
        file: "gas_vs_tokens_per_receipt.svg".into(),
        title: "L1 gas per 1M tokens vs receipt size".into(),
        x_label: "tokens per receipt".into(),
        y_label: "USD per 1M tokens".into(),
        legend: Legend::LowerLeft,
        x_log: true,
        y_log: true,
        series,
    }
}

fn losses(
    cfg: &Config,
    gas: f64,
    blob: f64,
    reference: f64,
    a: &price::AuditShares,
) -> Vec<String> {
    let mut out = Vec::new();
    let gwei = cfg.l1.gas_price_gwei.value;
    if gas > reference {
        let p = price::packing(cfg);
        out.push(format!(
            "**Price.** L1 gas per token is {}× the cheapest cited retail/batch price at {} gwei; \
             it breaks even only below {} gwei (with free compute). Prompts in blobs would leave \
             {}×: the per-receipt post and finalize gas must shrink too (batch-level commitments \
             instead of per-receipt work).",
            sig(gas / reference, 3),
            sig(gwei, 3),
            sig(
                price::break_even_gwei(cfg, p.tokens_per_receipt, p.input_share, reference),
                3
            ),
            sig(blob / reference, 3)
        ));
    }
    let s = cfg.audit.sample_rate.value;
    if s * a.freivalds >= 0.05 {
        let hashing = cfg.audit.hashing_share.value * cfg.audit.mlp_hash_bytes_share.value;
        out.push(format!(
            "**Verification cost.** Audits at a {} sampling rate cost {} of inference with the \
             Freivalds design ({} with today's re-execution), above the PRD's 5%; re-hashing \
             the fetched tensors is {} of the design's audit, the Freivalds products the rest. \
             Sampling at most {} of receipts would meet it.",
            pct(s),
            pct(s * a.freivalds),
            pct(s * a.reexecution),
            pct(hashing / a.freivalds),
            pct(0.05 / a.freivalds)
        ));
    }
    out
}

fn summary(
    cfg: &Config,
    gas: f64,
    blob: f64,
    reference: f64,
    a: &price::AuditShares,
) -> Vec<String> {
    let h = &cfg.hardware[0];
    let free = h.usd_per_hour.value / 3600.0 * (1.0 + cfg.audit.sample_rate.value * a.freivalds)
        / reference;
    let verdict = if gas > reference {
        "**Price: the protocol loses as built.**"
    } else {
        "**Price: L1 gas fits under retail.**"
    };
    let p = price::packing(cfg);
    let calldata =
        p.input_share * cfg.workload.input_bytes_per_token.value * cfg.l1.input_gas_per_byte.value;
    let calldata_share = calldata / price::gas_per_token(cfg, p.tokens_per_receipt, p.input_share);
    vec![
        format!(
            "{verdict} L1 gas alone is {} per 1M tokens at {} gwei ({}× the cheapest cited \
             price, {} per 1M); {} of it is the prompts posted as calldata. With the prompts in \
             blobs it would be {} per 1M ({}×).",
            usd(gas * PER_M),
            sig(cfg.l1.gas_price_gwei.value, 3),
            sig(gas / reference, 3),
            usd(reference * PER_M),
            pct(calldata_share),
            usd(blob * PER_M),
            sig(blob / reference, 3)
        ),
        format!(
            "If L1 cost were amortized away, an {} at {}/h would have to sustain {} tokens/s to \
             match that price (no GPU throughput is measured by the project yet).",
            h.name,
            usd(h.usd_per_hour.value),
            sig(free, 3)
        ),
    ]
}
