//! Assignment of ledger rows to units: the model's rules as one SQL `CASE`, most specific rule
//! first, so that the first matching `WHEN` is the winner.

use amoeba_catalog::mapping::sql_string;
use amoeba_catalog::model::Model;

/// SQL expressions giving a row's attributes; `None` where the source has no such attribute
/// (a stock loss has no shop), so that rules on it never match.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct RowKeys<'a> {
    pub(crate) platform: Option<&'a str>,
    pub(crate) shop: Option<&'a str>,
    pub(crate) team: Option<&'a str>,
    pub(crate) brand: Option<&'a str>,
    pub(crate) category: Option<&'a str>,
    pub(crate) sku: Option<&'a str>,
}

impl RowKeys<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            "platform" => self.platform,
            "shop" => self.shop,
            "team" => self.team,
            "brand" => self.brand,
            "category" => self.category,
            "sku" => self.sku,
            _ => None,
        }
    }
}

/// The unit of a row of `source`: the first (most specific) matching rule, else the model's
/// fallback for the source, else the root.
pub(crate) fn unit_expr(model: &Model, source: &str, keys: RowKeys<'_>) -> String {
    let mut sql = String::from("CASE");
    for rule in &model.assign {
        let mut conds = Vec::with_capacity(rule.keys.len());
        for (key, value) in &rule.keys {
            match keys.get(key) {
                Some(expr) => conds.push(format!("{expr} = {}", sql_string(value))),
                None => conds.clear(),
            }
            if conds.is_empty() {
                break;
            }
        }
        if conds.len() == rule.keys.len() {
            sql.push_str(&format!(
                " WHEN {} THEN {}",
                conds.join(" AND "),
                sql_string(&rule.unit)
            ));
        }
    }
    let otherwise = model
        .fallback
        .get(source)
        .map_or(model.root(), String::as_str);
    if sql == "CASE" {
        return sql_string(otherwise);
    }
    sql.push_str(&format!(" ELSE {} END", sql_string(otherwise)));
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn most_specific_rule_first_and_missing_keys_never_match() {
        let model = Model::parse(
            "m.toml",
            r#"
[[units]]
id = "C"
name = "c"
kind = "company"
[[units]]
id = "A"
name = "a"
kind = "profit"
parent = "C"
[[units]]
id = "B"
name = "b"
kind = "profit"
parent = "C"
[[assign]]
platform = "tmall"
unit = "A"
[[assign]]
sku = "X'1"
unit = "B"
[fallback]
stock_adjustments = "A"
"#,
        )
        .expect("model");
        let full = unit_expr(
            &model,
            "order_lines",
            RowKeys {
                platform: Some("l.platform"),
                sku: Some("l.sku"),
                ..RowKeys::default()
            },
        );
        assert_eq!(
            full,
            "CASE WHEN l.sku = 'X''1' THEN 'B' WHEN l.platform = 'tmall' THEN 'A' ELSE 'C' END"
        );
        let loss = unit_expr(&model, "stock_adjustments", RowKeys::default());
        assert_eq!(loss, "'A'");
    }
}
