//! Chinese full-text search over the directory: an in-process inverted index of `jieba-rs`
//! search-mode tokens, rebuilt from the snapshot after every import.
//!
//! Why in process rather than SQLite FTS5 or PostgreSQL `tsvector`: neither database segments
//! Chinese out of the box (FTS5 needs a loadable tokenizer, PostgreSQL needs `zhparser`), and the
//! two would rank differently; the directory is small (an import is capped at 10 000 uses), so one
//! index in memory gives the same answers on both databases and costs milliseconds to rebuild.
//!
//! Matching: the query is cut with `cut_for_search` (jieba's search-engine mode, which also emits
//! the sub-words of long words); a use matches when EVERY query term is one of its tokens or, for
//! words jieba cut differently in the entry, a substring of one of its fields (so 失业登记 finds
//! 就业失业登记 whatever the dictionary does). Score: the sum over terms of the field weight
//! (name and number weigh most), halved for a substring-only match; ties keep number order.

use std::collections::HashMap;
use std::sync::LazyLock;

use jieba_rs::Jieba;

use super::model::CardUse;
use super::regions::region_label;

/// Longest query, characters.
pub const QUERY_CHARS_MAX: usize = 64;
/// Most terms taken from one query (the rest are ignored).
pub const QUERY_TERMS_MAX: usize = 16;

/// jieba with its embedded dictionary (building it takes about 0.4 s, once per process).
static JIEBA: LazyLock<Jieba> = LazyLock::new(Jieba::new);

/// Function words that carry no meaning in a query.
const STOPWORDS: &[&str] = &["的", "和", "与", "及", "或", "在", "了", "是"];

/// Field weights (a substring-only match counts half).
const WEIGHT_NAME: u32 = 8;
const WEIGHT_NUMBER: u32 = 8;
const WEIGHT_CATEGORY: u32 = 4;
const WEIGHT_MODES: u32 = 4;
const WEIGHT_OTHER: u32 = 2;

/// The search terms of a text: jieba search-mode tokens, ASCII lowercased, without punctuation,
/// spaces or stopwords, without repeats, in first-seen order.
pub fn terms(text: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for token in JIEBA.cut_for_search(text, true) {
        let token = token.word.trim().to_lowercase();
        if token.chars().any(char::is_alphanumeric)
            && !STOPWORDS.contains(&token.as_str())
            && !out.contains(&token)
        {
            out.push(token);
        }
    }
    out
}

/// The index over one snapshot of the directory.
#[derive(Debug, Default)]
pub struct SearchIndex {
    /// Per use (snapshot order): each field's lowercased text with its weight.
    fields: Vec<Vec<(String, u32)>>,
    /// Token → (use index, best field weight), one entry per use.
    postings: HashMap<String, Vec<(usize, u32)>>,
}

fn searchable_fields(card_use: &CardUse) -> Vec<(String, u32)> {
    let join = |values: Vec<String>| values.join(" ");
    vec![
        (card_use.name.to_lowercase(), WEIGHT_NAME),
        (card_use.number.as_str().to_lowercase(), WEIGHT_NUMBER),
        (card_use.category.label().to_owned(), WEIGHT_CATEGORY),
        (
            join(
                card_use
                    .modes
                    .iter()
                    .map(|m| m.label().to_owned())
                    .collect(),
            ),
            WEIGHT_MODES,
        ),
        (
            join(
                card_use
                    .channels
                    .iter()
                    .flat_map(|c| [c.label().to_lowercase(), c.code().to_owned()])
                    .collect(),
            ),
            WEIGHT_OTHER,
        ),
        (
            join(
                card_use
                    .regions
                    .iter()
                    .flat_map(|r| [region_label(*r), r.code()])
                    .collect(),
            ),
            WEIGHT_OTHER,
        ),
        (
            join(
                card_use
                    .operations
                    .iter()
                    .map(|o| o.as_str().to_lowercase())
                    .collect(),
            ),
            WEIGHT_OTHER,
        ),
    ]
}

impl SearchIndex {
    /// Builds the index of `uses` (positions in the slice are the result indexes).
    pub fn build(uses: &[CardUse]) -> SearchIndex {
        let mut index = SearchIndex::default();
        for (position, card_use) in uses.iter().enumerate() {
            let fields = searchable_fields(card_use);
            let mut best: HashMap<String, u32> = HashMap::new();
            for (text, weight) in &fields {
                for term in terms(text) {
                    let entry = best.entry(term).or_insert(0);
                    *entry = (*entry).max(*weight);
                }
            }
            for (term, weight) in best {
                index
                    .postings
                    .entry(term)
                    .or_default()
                    .push((position, weight));
            }
            index.fields.push(fields);
        }
        index
    }

    /// Uses matching every term of `query`, as (use index, score), best first, ties in index
    /// order. A query without terms (only punctuation or stopwords) matches nothing.
    pub fn search(&self, query: &str) -> Vec<(usize, u32)> {
        let query_terms: Vec<String> = terms(query).into_iter().take(QUERY_TERMS_MAX).collect();
        if query_terms.is_empty() {
            return Vec::new();
        }
        let mut scores: Vec<Option<u32>> = vec![Some(0); self.fields.len()];
        for term in &query_terms {
            let mut hits: HashMap<usize, u32> = self
                .postings
                .get(term)
                .map(|list| list.iter().copied().collect())
                .unwrap_or_default();
            for (position, score) in scores.iter_mut().enumerate() {
                let Some(total) = score else { continue };
                let weight = hits.remove(&position).or_else(|| {
                    self.fields.get(position).and_then(|fields| {
                        fields
                            .iter()
                            .filter(|(text, _)| text.contains(term.as_str()))
                            .map(|(_, weight)| weight / 2)
                            .max()
                    })
                });
                *score = weight.map(|weight| *total + weight);
            }
        }
        let mut found: Vec<(usize, u32)> = scores
            .into_iter()
            .enumerate()
            .filter_map(|(position, score)| score.map(|score| (position, score)))
            .collect();
        found.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        found
    }
}
