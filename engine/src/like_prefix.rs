//! `account LIKE 'allocated_%'` as a prefix test.
//!
//! Arrow's LIKE kernel has fast paths for `'abc%'` (starts with), `'%abc'` and `'%abc%'`; any
//! `_` sends the whole column through a regular expression, row by row. Analysts write `_`
//! after a prefix all the time (`'allocated_%'`, `'fees:%'` is fine, `'U0_%'`), and the ledger
//! query of the benchmark suite that does was the slowest against DuckDB. A pattern that is a
//! prefix, then only `_`s, then one trailing `%` means "starts with the prefix and has at least
//! that many more characters", which this rule writes out before type coercion:
//!
//! ```text
//!  x LIKE 'allocated_%'      ─►  starts_with(x, 'allocated') AND character_length(x) >= 10
//!  x NOT LIKE 'U0__%'        ─►  NOT (starts_with(x, 'U0') AND character_length(x) >= 4)
//! ```
//!
//! Both sides are NULL for a NULL `x`, as LIKE is. Only filters (WHERE, HAVING, join
//! conditions) are rewritten: there the predicate names no output column. Case-insensitive
//! patterns, patterns with an escape character or a backslash, and every other shape are left
//! to the kernel.

use datafusion::common::config::ConfigOptions;
use datafusion::common::tree_node::{Transformed, TransformedResult, TreeNode};
use datafusion::error::Result;
use datafusion::functions::string::expr_fn::starts_with;
use datafusion::functions::unicode::expr_fn::character_length;
use datafusion::logical_expr::expr::Like;
use datafusion::logical_expr::{Expr, Filter, LogicalPlan, lit};
use datafusion::optimizer::AnalyzerRule;
use datafusion::scalar::ScalarValue;

/// The analyzer rule (it runs before type coercion, which types the new calls).
#[derive(Debug, Default)]
pub(crate) struct LikePrefix;

impl AnalyzerRule for LikePrefix {
    fn name(&self) -> &str {
        "amoeba_like_prefix"
    }

    fn analyze(&self, plan: LogicalPlan, _config: &ConfigOptions) -> Result<LogicalPlan> {
        plan.transform_up_with_subqueries(|node| match node {
            LogicalPlan::Filter(filter) => {
                let rewritten = filter.predicate.clone().transform_up(prefix_test)?;
                if !rewritten.transformed {
                    return Ok(Transformed::no(LogicalPlan::Filter(filter)));
                }
                Filter::try_new(rewritten.data, filter.input)
                    .map(|f| Transformed::yes(LogicalPlan::Filter(f)))
            }
            other => Ok(Transformed::no(other)),
        })
        .data()
    }
}

/// `expr LIKE 'prefix__%'` as a prefix test, when it is one.
fn prefix_test(expr: Expr) -> Result<Transformed<Expr>> {
    let Expr::Like(Like {
        negated,
        expr: subject,
        pattern,
        escape_char: None,
        case_insensitive: false,
    }) = &expr
    else {
        return Ok(Transformed::no(expr));
    };
    let Expr::Literal(ScalarValue::Utf8(Some(text)) | ScalarValue::Utf8View(Some(text)), _) =
        pattern.as_ref()
    else {
        return Ok(Transformed::no(expr));
    };
    let Some((prefix, at_least)) = prefix_pattern(text) else {
        return Ok(Transformed::no(expr));
    };
    let test = starts_with((**subject).clone(), lit(prefix))
        .and(character_length((**subject).clone()).gt_eq(lit(at_least)));
    Ok(Transformed::yes(if *negated { !test } else { test }))
}

/// `'allocated_%'` → `("allocated", 10)`: the prefix and the least number of characters, for
/// a pattern of a prefix without wildcards, one or more `_`, then a single trailing `%`.
fn prefix_pattern(pattern: &str) -> Option<(String, i32)> {
    let body = pattern.strip_suffix('%')?;
    let prefix = body.trim_end_matches('_');
    let wildcards = body.len() - prefix.len();
    if wildcards == 0 || prefix.is_empty() || prefix.contains(['%', '_', '\\']) {
        return None;
    }
    let at_least = i32::try_from(prefix.chars().count() + wildcards).ok()?;
    Some((prefix.to_string(), at_least))
}

#[cfg(test)]
mod tests {
    use super::prefix_pattern;

    #[test]
    fn only_prefix_wildcards_percent_patterns_are_prefix_tests() {
        assert_eq!(
            prefix_pattern("allocated_%"),
            Some(("allocated".into(), 10))
        );
        assert_eq!(prefix_pattern("U0__%"), Some(("U0".into(), 4)));
        assert_eq!(prefix_pattern("分摊_%"), Some(("分摊".into(), 3)));
        for kept in [
            "abc%", "%abc_%", "a_b%", "abc_", "_%", "a%_%", "a\\_%", "abc",
        ] {
            assert_eq!(prefix_pattern(kept), None, "{kept}");
        }
    }
}
