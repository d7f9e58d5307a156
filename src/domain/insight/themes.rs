//! What unhappy customers talk about: the words and two-word phrases over-represented
//! in one side's comments against the other's (detractors against promoters), ranked by
//! the weighted log-odds ratio with an informative Dirichlet prior (Monroe, Colaresi and
//! Quinn 2008, "Fightin' Words", Political Analysis 16:4, §3.5.3).
//!
//! **Terms.** A comment is cut into words at Unicode word boundaries (UAX #29,
//! `unicode-segmentation`), each folded to lower case; words without a letter are
//! dropped, and so are the stop words of the comment's language (NLTK's lists, from the
//! `stop-words` crate) except negations ("not", "no", "kein", "pas"…), which carry the
//! meaning of a complaint. Outside English an apostrophe splits a word, so French
//! "l'application" is "l" (a stop word) and "application". Each remaining word is
//! stemmed by the Snowball stemmer of the language (`rust-stemmers`): "deliveries" and
//! "delivery" are one term, shown by its most frequent written form. A bigram is two
//! kept words that stand next to each other in the comment (no stop word between).
//! A language without a stemmer is folded only.
//!
//! **Counts.** y_w^i is the number of comments of side i that contain term w (each
//! comment counts once per term, so one long comment cannot dominate), n^i = Σ_w y_w^i.
//! Unigrams and bigrams are two vocabularies, each with its own n.
//!
//! **Score.** With the prior α_w = y_w^A + y_w^B (the pooled counts, α₀ = n^A + n^B:
//! the informative prior of Jurafsky et al. 2014 and ConvoKit's Fighting Words):
//! δ_w = ln((y_w^A + α_w)/(n^A + α₀ − y_w^A − α_w)) − ln((y_w^B + α_w)/(n^B + α₀ − y_w^B − α_w)),
//! σ²(δ_w) ≈ 1/(y_w^A + α_w) + 1/(y_w^B + α_w), z = δ/σ. z > 0: over-represented on A.
//! |z| > 1.96 is the usual reading of "clearly over-represented"; with many terms some
//! pass it by chance (no correction for multiple comparisons).

use std::collections::{BTreeMap, HashMap, HashSet};

use rust_stemmers::{Algorithm, Stemmer};
use unicode_segmentation::UnicodeSegmentation;

/// Most comments of one request analysed (the newest, per side).
pub const MAX_COMMENTS_PER_SIDE: usize = 20_000;
/// Example response ids kept per term and side.
pub const MAX_EXAMPLES: usize = 3;

/// Unigram or bigram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TermKind {
    Word,
    Phrase,
}

/// Which side a comment belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The unhappy side (detractors, unsatisfied, disagree): positive z.
    A,
    /// The happy side (promoters, satisfied, agree): negative z.
    B,
}

/// A tokeniser for one language.
pub struct Analyzer {
    /// The language used (the primary subtag), or "" when none applies.
    pub language: &'static str,
    stemmer: Option<Stemmer>,
    stop: HashSet<&'static str>,
    split_apostrophes: bool,
}

impl std::fmt::Debug for Analyzer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Analyzer").field("language", &self.language).finish_non_exhaustive()
    }
}

/// The languages with a stemmer and a stop-word list: (primary subtag, stemmer).
const LANGUAGES: &[(&str, Algorithm)] = &[
    ("ar", Algorithm::Arabic),
    ("da", Algorithm::Danish),
    ("de", Algorithm::German),
    ("el", Algorithm::Greek),
    ("en", Algorithm::English),
    ("es", Algorithm::Spanish),
    ("fi", Algorithm::Finnish),
    ("fr", Algorithm::French),
    ("hu", Algorithm::Hungarian),
    ("it", Algorithm::Italian),
    ("nl", Algorithm::Dutch),
    ("no", Algorithm::Norwegian),
    ("pt", Algorithm::Portuguese),
    ("ro", Algorithm::Romanian),
    ("ru", Algorithm::Russian),
    ("sv", Algorithm::Swedish),
    ("tr", Algorithm::Turkish),
];

/// Stop words kept because they negate: the complaint is in "not working".
fn is_negation(language: &str, word: &str) -> bool {
    match language {
        "en" => matches!(word, "no" | "not" | "nor") || word.ends_with("n't"),
        "de" => word.starts_with("kein") || matches!(word, "nicht" | "nichts" | "ohne"),
        "fr" => matches!(word, "ne" | "pas" | "ni" | "sans" | "jamais" | "rien"),
        "es" => matches!(word, "no" | "ni" | "sin" | "nada" | "nunca"),
        _ => false,
    }
}

impl Analyzer {
    /// The analyser of a BCP 47 tag's primary language ("pt-BR" → Portuguese; "nb"
    /// and "nn" → Norwegian); English for an empty tag; fold-only for a language
    /// without a stemmer.
    pub fn for_language(tag: &str) -> Analyzer {
        let primary = tag.split(['-', '_']).next().unwrap_or("").to_ascii_lowercase();
        let primary = match primary.as_str() {
            "" => "en".to_owned(),
            "nb" | "nn" => "no".to_owned(),
            _ => primary,
        };
        let Some(&(language, algorithm)) = LANGUAGES.iter().find(|(l, _)| *l == primary) else {
            return Analyzer { language: "", stemmer: None, stop: HashSet::new(), split_apostrophes: false };
        };
        let stop =
            stop_words::lookup(language).unwrap_or(&[]).iter().copied().filter(|w| !is_negation(language, w)).collect();
        Analyzer { language, stemmer: Some(Stemmer::create(algorithm)), stop, split_apostrophes: language != "en" }
    }

    /// The comment's words in order, folded: `Some((stem, word))` for a kept word,
    /// `None` where a stop word stood (it breaks bigrams).
    pub fn words(&self, text: &str) -> Vec<Option<(String, String)>> {
        let mut out = Vec::new();
        for raw in text.unicode_words() {
            let folded = raw.to_lowercase().replace(['\u{2019}', '\u{02bc}'], "'");
            let parts: Vec<&str> =
                if self.split_apostrophes { folded.split('\'').collect() } else { vec![folded.as_str()] };
            for w in parts {
                if w.is_empty() || !w.chars().any(char::is_alphabetic) || self.stop.contains(w) {
                    out.push(None);
                    continue;
                }
                let stem = match &self.stemmer {
                    Some(s) => s.stem(w).into_owned(),
                    None => w.to_owned(),
                };
                out.push(Some((stem, w.to_owned())));
            }
        }
        out
    }

    /// The distinct terms of one comment: (kind, stem) → the written form.
    pub fn terms(&self, text: &str) -> BTreeMap<(TermKind, String), String> {
        let words = self.words(text);
        let mut terms = BTreeMap::new();
        for w in words.iter().flatten() {
            terms.entry((TermKind::Word, w.0.clone())).or_insert_with(|| w.1.clone());
        }
        for pair in words.windows(2) {
            if let [Some(a), Some(b)] = pair {
                terms
                    .entry((TermKind::Phrase, format!("{} {}", a.0, b.0)))
                    .or_insert_with(|| format!("{} {}", a.1, b.1));
            }
        }
        terms
    }
}

#[derive(Debug, Default)]
struct TermStats {
    count_a: i64,
    count_b: i64,
    forms: HashMap<String, i64>,
    examples_a: Vec<String>,
    examples_b: Vec<String>,
}

/// The term counts of both sides, built a comment at a time.
#[derive(Debug, Default)]
pub struct Corpus {
    terms: HashMap<(TermKind, String), TermStats>,
    pub comments_a: i64,
    pub comments_b: i64,
}

impl Corpus {
    /// Adds one comment's distinct terms, with the id of its response.
    pub fn add(&mut self, side: Side, id: &str, terms: BTreeMap<(TermKind, String), String>) {
        match side {
            Side::A => self.comments_a += 1,
            Side::B => self.comments_b += 1,
        }
        for (key, form) in terms {
            let t = self.terms.entry(key).or_default();
            *t.forms.entry(form).or_default() += 1;
            let (count, examples) = match side {
                Side::A => (&mut t.count_a, &mut t.examples_a),
                Side::B => (&mut t.count_b, &mut t.examples_b),
            };
            *count += 1;
            if examples.len() < MAX_EXAMPLES {
                examples.push(id.to_owned());
            }
        }
    }
}

/// One ranked term.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    pub kind: TermKind,
    /// The most frequent written form (ties: the first in byte order).
    pub term: String,
    pub stem: String,
    /// Comments containing it, on each side.
    pub count_a: i64,
    pub count_b: i64,
    /// δ_w, the weighted log-odds ratio (A against B).
    pub log_odds: f64,
    pub z: f64,
    /// Response ids of comments on the side it is over-represented on.
    pub examples: Vec<String>,
}

/// The ranking: terms over-represented on A (z > 0, highest first) and on B (z < 0,
/// lowest first).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Themes {
    pub over_a: Vec<Theme>,
    pub over_b: Vec<Theme>,
    pub comments_a: i64,
    pub comments_b: i64,
}

/// δ_w and its z for one term (module docs): `y` its counts, `n` the totals of its
/// vocabulary, `alpha` its prior count, `alpha0` the prior's total. `None` when a
/// denominator is not positive (a vocabulary of one term: nothing to contrast).
pub fn log_odds(y_a: f64, n_a: f64, y_b: f64, n_b: f64, alpha: f64, alpha0: f64) -> Option<(f64, f64)> {
    let (da, db) = (n_a + alpha0 - y_a - alpha, n_b + alpha0 - y_b - alpha);
    let (ea, eb) = (y_a + alpha, y_b + alpha);
    if da <= 0.0 || db <= 0.0 || ea <= 0.0 || eb <= 0.0 {
        return None;
    }
    let delta = (ea / da).ln() - (eb / db).ln();
    let var = 1.0 / ea + 1.0 / eb;
    Some((delta, delta / var.sqrt()))
}

/// Ranks the corpus: terms in at least `min_count` comments in all, at most `limit`
/// per side.
pub fn rank(corpus: &Corpus, min_count: i64, limit: usize) -> Themes {
    let mut totals: HashMap<TermKind, (f64, f64)> = HashMap::new();
    for ((kind, _), t) in &corpus.terms {
        let e = totals.entry(*kind).or_default();
        e.0 += t.count_a as f64;
        e.1 += t.count_b as f64;
    }
    let mut scored: Vec<Theme> = Vec::new();
    for ((kind, stem), t) in &corpus.terms {
        if t.count_a + t.count_b < min_count.max(1) {
            continue;
        }
        let (n_a, n_b) = totals[kind];
        let alpha = (t.count_a + t.count_b) as f64;
        let Some((delta, z)) = log_odds(t.count_a as f64, n_a, t.count_b as f64, n_b, alpha, n_a + n_b) else {
            continue;
        };
        let mut forms: Vec<(&String, &i64)> = t.forms.iter().collect();
        forms.sort_by(|a, b| b.1.cmp(a.1).then_with(|| a.0.cmp(b.0)));
        scored.push(Theme {
            kind: *kind,
            term: forms.first().map(|f| f.0.clone()).unwrap_or_default(),
            stem: stem.clone(),
            count_a: t.count_a,
            count_b: t.count_b,
            log_odds: delta,
            z,
            examples: if z > 0.0 { t.examples_a.clone() } else { t.examples_b.clone() },
        });
    }
    // Strongest first; equal z by more comments, then by term (a stable answer).
    let order = |a: &Theme, b: &Theme| {
        b.z.abs()
            .total_cmp(&a.z.abs())
            .then_with(|| (b.count_a + b.count_b).cmp(&(a.count_a + a.count_b)))
            .then_with(|| a.term.cmp(&b.term))
            .then_with(|| a.kind.cmp(&b.kind))
    };
    let (mut over_a, mut over_b): (Vec<Theme>, Vec<Theme>) =
        scored.into_iter().filter(|t| t.z != 0.0).partition(|t| t.z > 0.0);
    over_a.sort_by(order);
    over_b.sort_by(order);
    over_a.truncate(limit);
    over_b.truncate(limit);
    Themes { over_a, over_b, comments_a: corpus.comments_a, comments_b: corpus.comments_b }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn words_are_folded_stemmed_and_stop_words_dropped() {
        let en = Analyzer::for_language("en-GB");
        let w: Vec<Option<String>> =
            en.words("The deliveries were LATE, and it doesn't work!").into_iter().map(|w| w.map(|w| w.0)).collect();
        // Stems from `python3 tests/reference/insight.py themes` (snowballstemmer).
        assert_eq!(
            w,
            vec![
                None,
                Some("deliveri".into()),
                None,
                Some("late".into()),
                None,
                None,
                Some("doesn't".into()),
                Some("work".into())
            ]
        );
        // Curly apostrophes are straight ones; numbers are not words.
        assert_eq!(en.terms("don’t 404 don't").len(), 1);
        let de = Analyzer::for_language("de");
        let t: Vec<String> =
            de.words("Die Lieferungen kamen nicht pünktlich").into_iter().flatten().map(|w| w.0).collect();
        assert_eq!(t, ["liefer", "kam", "nicht", "punktlich"]);
        let fr = Analyzer::for_language("fr-CA");
        let t: Vec<String> = fr.words("L'application ne fonctionne pas").into_iter().flatten().map(|w| w.0).collect();
        assert_eq!(t, ["appliqu", "ne", "fonction", "pas"]);
        let es = Analyzer::for_language("es");
        let t: Vec<String> = es.words("La aplicación no funciona bien").into_iter().flatten().map(|w| w.0).collect();
        assert_eq!(t, ["aplic", "no", "funcion", "bien"]);
        // A language without a stemmer is folded only.
        let xx = Analyzer::for_language("xx");
        assert_eq!(xx.language, "");
        assert_eq!(xx.words("Ünïcode Words")[0].as_ref().unwrap().0, "ünïcode");
        assert_eq!(Analyzer::for_language("").language, "en");
        assert_eq!(Analyzer::for_language("nb-NO").language, "no");
    }

    #[test]
    fn bigrams_join_neighbours_only() {
        let en = Analyzer::for_language("en");
        let t = en.terms("Support is slow. Slow support!");
        let phrases: Vec<&String> = t.iter().filter(|((k, _), _)| *k == TermKind::Phrase).map(|(_, f)| f).collect();
        // "support is slow": "is" stands between; "slow. slow": punctuation does not break.
        assert_eq!(phrases, [&"slow slow".to_string(), &"slow support".to_string()]);
    }

    #[test]
    fn log_odds_matches_the_formula() {
        // `python3 tests/reference/insight.py themes`: y=(8,1) n=(100,150) alpha=9 alpha0=250
        // delta=0.6886325002 z=1.7279457131
        let (d, z) = log_odds(8.0, 100.0, 1.0, 150.0, 9.0, 250.0).unwrap();
        close(d, 0.688_632_500_2);
        close(z, 1.727_945_713_1);
        // Equal shares on both sides: δ = 0.
        let (d, _) = log_odds(10.0, 100.0, 10.0, 100.0, 20.0, 200.0).unwrap();
        close(d, 0.0);
        assert_eq!(log_odds(3.0, 3.0, 2.0, 2.0, 5.0, 5.0), None, "one term in all: nothing to contrast");
    }

    #[test]
    fn a_small_corpus_ranks_as_the_reference_does() {
        let en = Analyzer::for_language("en");
        let detractors = [
            "Support is slow and the app crashes",
            "The app crashes every day, support never answers",
            "Too expensive and slow support",
            "Billing is confusing and too expensive",
        ];
        let promoters = [
            "Great app, easy to use",
            "Easy setup and great support",
            "I love how easy the reports are",
            "Great reports, the app is fast",
            "Fast and easy",
        ];
        let mut c = Corpus::default();
        for (i, t) in detractors.iter().enumerate() {
            c.add(Side::A, &format!("d{i}"), en.terms(t));
        }
        for (i, t) in promoters.iter().enumerate() {
            c.add(Side::B, &format!("p{i}"), en.terms(t));
        }
        let themes = rank(&c, 2, 5);
        assert_eq!((themes.comments_a, themes.comments_b), (4, 5));
        let top: Vec<(&str, i64, i64)> =
            themes.over_a.iter().map(|t| (t.term.as_str(), t.count_a, t.count_b)).collect();
        let bottom: Vec<(&str, i64, i64)> =
            themes.over_b.iter().map(|t| (t.term.as_str(), t.count_a, t.count_b)).collect();
        // `python3 tests/reference/insight.py themes` (its own tokeniser: regex words,
        // NLTK lists from the stop-words crate, snowballstemmer):
        // +0.8484969075 crashes 2 0 / expensive 2 0 / slow 2 0, +0.7303741391 app crashes 2 0,
        // +0.6505515775 support 3 1; -1.2771552424 easy 0 4, -1.0715293954 great 0 3,
        // -0.8484969075 fast 0 2 / reports 0 2; app 2 2 has z = 0 and is on neither side.
        assert_eq!(
            top,
            [("crashes", 2, 0), ("expensive", 2, 0), ("slow", 2, 0), ("app crashes", 2, 0), ("support", 3, 1)]
        );
        assert_eq!(bottom, [("easy", 0, 4), ("great", 0, 3), ("fast", 0, 2), ("reports", 0, 2)]);
        close(themes.over_a[0].z, 0.848_496_907_5);
        close(themes.over_a[3].z, 0.730_374_139_1);
        close(themes.over_a[4].z, 0.650_551_577_5);
        close(themes.over_b[0].z, -1.277_155_242_4);
        close(themes.over_b[1].z, -1.071_529_395_4);
        assert_eq!(themes.over_a[0].examples, ["d0", "d1"]);
        assert_eq!(themes.over_b[0].examples, ["p0", "p1", "p2"], "at most three examples");
        assert!(themes.over_a.iter().chain(&themes.over_b).all(|t| t.count_a + t.count_b >= 2));
    }

    #[test]
    fn empty_and_one_sided_corpora_rank_nothing() {
        assert_eq!(rank(&Corpus::default(), 1, 10), Themes::default());
        let en = Analyzer::for_language("en");
        let mut c = Corpus::default();
        c.add(Side::A, "d0", en.terms("slow support"));
        c.add(Side::A, "d1", en.terms("slow app"));
        let t = rank(&c, 1, 10);
        assert!(t.over_a.is_empty() && t.over_b.is_empty(), "{t:?}");
        assert_eq!(t.comments_a, 2);
    }
}
