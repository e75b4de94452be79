//! The fraud categories' names for people, Chinese first: what the alerts to
//! places' workers call a category (`贷款诈骗`, not `loan`). The warning page's
//! category texts give them (built in, or `[warnpage] templates`), so that a
//! resident's page and a worker's message name a scam alike; a reload that changes
//! the texts changes both.

use std::collections::HashMap;

/// Each category's Chinese name.
#[derive(Debug, Clone, Default)]
pub struct Names {
    zh: HashMap<String, String>,
}

/// The category of lists that name none, whose name stands in for an unknown one.
const FALLBACK: &str = "fraud";

impl Names {
    /// The names of `(category, Chinese name)` pairs.
    pub fn new(zh: impl IntoIterator<Item = (String, String)>) -> Names {
        Names {
            zh: zh.into_iter().collect(),
        }
    }

    /// The Chinese name of `category`: its own, else that of `fraud`, else the
    /// category as written.
    pub fn zh<'a>(&'a self, category: &'a str) -> &'a str {
        self.zh
            .get(category)
            .or_else(|| self.zh.get(FALLBACK))
            .map_or(category, String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_category_takes_the_general_name() {
        let n = Names::new([
            ("loan".to_string(), "贷款诈骗".to_string()),
            ("fraud".to_string(), "诈骗".to_string()),
        ]);
        assert_eq!(n.zh("loan"), "贷款诈骗");
        assert_eq!(n.zh("brand-new"), "诈骗");
        assert_eq!(Names::default().zh("loan"), "loan");
    }
}
