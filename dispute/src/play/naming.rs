//! Which entry of the disputed step the challenger names. With the defender's committed tensor
//! (checked by `data`), the first row whose bytes differ from ours and, for a GEMM or scores
//! step, the first differing element in it: an entry that is wrong in what the defender
//! committed, so its opening can only show fraud. Without the defender's rows the contract
//! offers nothing better than a guess (there is no on-chain data request yet, issue #14): the
//! audit's finding at this step when there is one, else our first present row.

use verinfer_prover::{LayerOp, StepInfo, StepKind, TensorOpening};

use crate::watch::source::WholeTensor;

/// Whether the named element is a `col` of the row (GEMM outputs: i32 columns; scores: i64
/// positions) or the row as a whole (every other op ignores `col`).
fn element_width(info: &StepInfo) -> Option<usize> {
    match info.kind {
        StepKind::LmHead => Some(4),
        StepKind::Layer {
            op: LayerOp::Scores,
            ..
        } => Some(8),
        StepKind::Layer { op, .. } if op.matrix().is_some() => Some(4),
        _ => None,
    }
}

/// The first element (of `width` bytes) where two rows differ, past the shorter one's end when
/// one is a prefix of the other.
fn first_diff(a: &[u8], b: &[u8], width: usize) -> u32 {
    let n = a.len().min(b.len()) / width;
    (0..n)
        .find(|&i| a[i * width..(i + 1) * width] != b[i * width..(i + 1) * width])
        .unwrap_or(n) as u32
}

/// The first (row, col) where the defender's committed tensor differs from ours.
pub fn wrong_entry(
    info: &StepInfo,
    own: &TensorOpening,
    theirs: &WholeTensor,
) -> Option<(u32, u32)> {
    let mut addrs: Vec<u64> = own
        .addresses
        .iter()
        .copied()
        .chain(theirs.rows.iter().map(|(a, _)| *a))
        .collect();
    addrs.sort_unstable();
    addrs.dedup();
    let theirs_at = |a: u64| {
        theirs
            .rows
            .binary_search_by_key(&a, |(x, _)| *x)
            .map(|i| theirs.rows[i].1.clone())
            .unwrap_or_default()
    };
    for a in addrs {
        let (ours, their) = (own.row_bytes(a), theirs_at(a));
        if ours == their {
            continue;
        }
        let row = u32::try_from(a).ok()?;
        let col = element_width(info).map_or(0, |w| first_diff(&ours, &their, w));
        return Some((row, col));
    }
    None
}

/// The entry named without the defender's rows: the audit's finding `hint` when it is at this
/// step, else the first present row of our tensor (column 0).
pub fn blind_entry(
    info: &StepInfo,
    own: &TensorOpening,
    hint: Option<(u64, u32, u32)>,
) -> (u32, u32) {
    if let Some((_, row, col)) = hint.filter(|h| h.0 == info.step) {
        return (row, col);
    }
    let row = own.addresses.first().copied().unwrap_or(0);
    (u32::try_from(row).unwrap_or(0), 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verinfer_prover::Tensor;

    fn opening(addresses: Vec<u64>, data: Vec<i32>) -> TensorOpening {
        let tensor = Tensor::I32 { cols: 3, data };
        let tree = tensor.tree(&addresses).unwrap();
        TensorOpening {
            step: 4,
            tensor,
            addresses,
            tree,
        }
    }

    fn whole(t: &TensorOpening) -> WholeTensor {
        WholeTensor {
            step: t.step,
            output_root: t.root(),
            trace_proof: Vec::new(),
            rows: t
                .addresses
                .iter()
                .enumerate()
                .map(|(i, &a)| (a, t.tensor.row_bytes(i)))
                .collect(),
        }
    }

    fn info(op: LayerOp) -> StepInfo {
        StepInfo {
            step: 4,
            round: 0,
            kind: StepKind::Layer { layer: 0, op },
        }
    }

    #[test]
    fn the_first_differing_row_and_element_is_named() {
        let ours = opening(vec![0, 1, 5], (0..9).collect());
        let mut d: Vec<i32> = (0..9).collect();
        d[8] += 7; // row at address 5, column 2
        d[7] -= 1; // and column 1 before it
        let theirs = whole(&opening(vec![0, 1, 5], d));
        assert_eq!(
            wrong_entry(&info(LayerOp::Gate), &ours, &theirs),
            Some((5, 1))
        );
        // A row op is named by its row alone.
        assert_eq!(
            wrong_entry(&info(LayerOp::AttnNorm), &ours, &theirs),
            Some((5, 0))
        );
        // A row the defender left out, or added, is wrong as a whole.
        let short = whole(&opening(vec![0, 5], vec![0, 1, 2, 6, 7, 8]));
        assert_eq!(
            wrong_entry(&info(LayerOp::Gate), &ours, &short),
            Some((1, 0))
        );
        let extra = whole(&opening(
            vec![0, 1, 3, 5],
            (0..12).map(|x| if x >= 9 { x - 3 } else { x }).collect(),
        ));
        assert_eq!(
            wrong_entry(&info(LayerOp::Up), &ours, &extra).map(|e| e.0),
            Some(3)
        );
        assert_eq!(
            wrong_entry(&info(LayerOp::Gate), &ours, &whole(&ours)),
            None
        );
    }

    #[test]
    fn blind_naming_takes_the_audit_hint_only_at_its_step() {
        let ours = opening(vec![2, 3], (0..6).collect());
        assert_eq!(
            blind_entry(&info(LayerOp::Gate), &ours, Some((4, 3, 1))),
            (3, 1)
        );
        assert_eq!(
            blind_entry(&info(LayerOp::Gate), &ours, Some((9, 3, 1))),
            (2, 0)
        );
        assert_eq!(blind_entry(&info(LayerOp::Gate), &ours, None), (2, 0));
    }
}
