//! The last section: every number the model read, with its source.

use crate::fmt::{num, Table};
use crate::Config;

pub(crate) fn section(cfg: &Config) -> String {
    let mut t = Table::new(["assumption", "value", "source"]);
    for (path, value, source) in &cfg.sources {
        t.row([format!("`{path}`"), num(*value), source.replace('|', "\\|")]);
    }
    format!(
        "## Assumptions and sources\n\n\
         Every number the model read (`ops/econ/default.toml`). Prices are as of the date in \
         their source; update them and regenerate.\n\n{}\n",
        t.render()
    )
}
