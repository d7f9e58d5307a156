//! Survey kinds, scales, scores and buckets (docs/engagement.md, "Survey metrics"), and the follow-up
//! threshold defaults (docs/api.md, "Surveys, eligibility and defaults"). Each rule lives in exactly one function here.

use crate::error::{AppError, Result};

/// NPS, CSAT or CES (the Customer *Effort* Score survey).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SurveyKind {
    Nps,
    Csat,
    Ces,
}

impl SurveyKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            SurveyKind::Nps => "nps",
            SurveyKind::Csat => "csat",
            SurveyKind::Ces => "ces",
        }
    }

    pub fn from_db(s: &str) -> Result<Self> {
        match s {
            "nps" => Ok(SurveyKind::Nps),
            "csat" => Ok(SurveyKind::Csat),
            "ces" => Ok(SurveyKind::Ces),
            other => Err(anyhow::anyhow!("unknown survey kind {other:?} in database").into()),
        }
    }
}

/// Where a score falls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Bucket {
    Promoter,
    Passive,
    Detractor,
    Satisfied,
    Unsatisfied,
    Agree,
    NotAgree,
}

impl Bucket {
    pub fn as_str(self) -> &'static str {
        match self {
            Bucket::Promoter => "promoter",
            Bucket::Passive => "passive",
            Bucket::Detractor => "detractor",
            Bucket::Satisfied => "satisfied",
            Bucket::Unsatisfied => "unsatisfied",
            Bucket::Agree => "agree",
            Bucket::NotAgree => "not_agree",
        }
    }

    pub fn from_db(s: &str) -> Result<Self> {
        Ok(match s {
            "promoter" => Bucket::Promoter,
            "passive" => Bucket::Passive,
            "detractor" => Bucket::Detractor,
            "satisfied" => Bucket::Satisfied,
            "unsatisfied" => Bucket::Unsatisfied,
            "agree" => Bucket::Agree,
            "not_agree" => Bucket::NotAgree,
            other => return Err(anyhow::anyhow!("unknown bucket {other:?} in database").into()),
        })
    }
}

/// A survey's scale: its kind and its top score. The bottom is 0 for NPS, 1 otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scale {
    pub kind: SurveyKind,
    pub max: i32,
}

/// One bucket's closed score range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketRange {
    pub bucket: Bucket,
    pub min: i32,
    pub max: i32,
}

impl Scale {
    /// Checks a requested scale; `None` takes the kind's default (NPS 10, CSAT 5, CES 7).
    pub fn parse(kind: SurveyKind, max: Option<i32>) -> Result<Self> {
        let (allowed, default): (&[i32], i32) = match kind {
            SurveyKind::Nps => (&[10], 10),
            SurveyKind::Csat => (&[3, 5, 7, 10], 5),
            SurveyKind::Ces => (&[5, 7], 7),
        };
        let max = max.unwrap_or(default);
        if !allowed.contains(&max) {
            let list = allowed.iter().map(i32::to_string).collect::<Vec<_>>().join(", ");
            return Err(AppError::invalid(
                "scale_max",
                format!("{} scales end at one of {list}; got {max}", kind.as_str().to_uppercase()),
            ));
        }
        Ok(Scale { kind, max })
    }

    pub fn min(self) -> i32 {
        match self.kind {
            SurveyKind::Nps => 0,
            SurveyKind::Csat | SurveyKind::Ces => 1,
        }
    }

    /// The bucket of a score on this scale (docs/engagement.md, "Survey metrics").
    pub fn bucket(self, score: i32) -> Bucket {
        match self.kind {
            SurveyKind::Nps => match score {
                9.. => Bucket::Promoter,
                7..=8 => Bucket::Passive,
                _ => Bucket::Detractor,
            },
            SurveyKind::Csat => {
                if score >= self.top_box_start() {
                    Bucket::Satisfied
                } else {
                    Bucket::Unsatisfied
                }
            }
            SurveyKind::Ces => {
                if score >= self.top_box_start() {
                    Bucket::Agree
                } else {
                    Bucket::NotAgree
                }
            }
        }
    }

    /// The lowest score of the "good" boxes: CSAT top 1 box on 1–3, top 2 on 1–5 and
    /// 1–7, top 3 on 1–10; CES 5 on 1–7, 4 on 1–5; NPS promoters from 9.
    fn top_box_start(self) -> i32 {
        match (self.kind, self.max) {
            (SurveyKind::Nps, _) => 9,
            (SurveyKind::Csat, 3) => 3,
            (SurveyKind::Csat, 10) => 8,
            (SurveyKind::Csat, m) => m - 1,
            (SurveyKind::Ces, 5) => 4,
            (SurveyKind::Ces, _) => 5,
        }
    }

    /// Every bucket with its score range, in display order.
    pub fn bucket_ranges(self) -> Vec<BucketRange> {
        let (lo, hi, top) = (self.min(), self.max, self.top_box_start());
        match self.kind {
            SurveyKind::Nps => vec![
                BucketRange { bucket: Bucket::Promoter, min: 9, max: 10 },
                BucketRange { bucket: Bucket::Passive, min: 7, max: 8 },
                BucketRange { bucket: Bucket::Detractor, min: 0, max: 6 },
            ],
            SurveyKind::Csat => vec![
                BucketRange { bucket: Bucket::Satisfied, min: top, max: hi },
                BucketRange { bucket: Bucket::Unsatisfied, min: lo, max: top - 1 },
            ],
            SurveyKind::Ces => vec![
                BucketRange { bucket: Bucket::Agree, min: top, max: hi },
                BucketRange { bucket: Bucket::NotAgree, min: lo, max: top - 1 },
            ],
        }
    }

    /// The bucket the headline counts as "good" (promoters, satisfied, agree).
    pub fn good_bucket(self) -> Bucket {
        match self.kind {
            SurveyKind::Nps => Bucket::Promoter,
            SurveyKind::Csat => Bucket::Satisfied,
            SurveyKind::Ces => Bucket::Agree,
        }
    }

    /// Follow-up threshold when the survey sets none: NPS 6; CSAT the unsatisfied
    /// boxes (1 on 1–3, 2 on 1–5 and 1–7, 4 on 1–10); CES the disagree boxes (3 on
    /// 1–7, 2 on 1–5). See docs/api.md, "Surveys, eligibility and defaults".
    pub fn default_follow_up_threshold(self) -> i32 {
        match (self.kind, self.max) {
            (SurveyKind::Nps, _) => 6,
            (SurveyKind::Csat, 3) => 1,
            (SurveyKind::Csat, 10) => 4,
            (SurveyKind::Csat, _) => 2,
            (SurveyKind::Ces, 5) => 2,
            (SurveyKind::Ces, _) => 3,
        }
    }

    /// The headline formula in words.
    pub fn formula(self) -> &'static str {
        match self.kind {
            SurveyKind::Nps => "100 × (promoters − detractors) / n",
            SurveyKind::Csat => "100 × satisfied / n",
            SurveyKind::Ces => "100 × agree / n",
        }
    }

    /// How the headline's interval is computed.
    pub fn interval_method(self) -> &'static str {
        match self.kind {
            SurveyKind::Nps => {
                "adjusted-Wald (Rocks 2016): p̃ = (promoters + ¾) / (n + 3), d̃ = (detractors + ¾) / (n + 3), \
                 100 × ((p̃ − d̃) ± 1.96 × sqrt((p̃ + d̃ − (p̃ − d̃)²) / (n + 3))), clamped to [−100, 100]; \
                 mean: Student t"
            }
            SurveyKind::Csat | SurveyKind::Ces => "Wilson score interval at 95 %; mean: Student t",
        }
    }

    /// Checks a follow-up threshold against this scale.
    pub fn parse_threshold(self, threshold: Option<i32>) -> Result<Option<i32>> {
        match threshold {
            Some(t) if t < self.min() || t > self.max => Err(AppError::invalid(
                "follow_up.threshold",
                format!("must be on the scale {}–{}; got {t}", self.min(), self.max),
            )),
            other => Ok(other),
        }
    }
}

/// A score known to lie on its survey's scale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Score {
    pub value: i32,
    pub bucket: Bucket,
}

impl Score {
    /// Accepts a score for `scale`. Missing or off the scale is `INVALID_ARGUMENT` on `score`.
    pub fn parse(scale: Scale, raw: Option<i32>) -> Result<Self> {
        let Some(value) = raw else {
            return Err(AppError::invalid(
                "score",
                format!("is required: an integer from {} to {}", scale.min(), scale.max),
            ));
        };
        if value < scale.min() || value > scale.max {
            return Err(AppError::invalid(
                "score",
                format!("must be an integer from {} to {}; got {value}", scale.min(), scale.max),
            ));
        }
        Ok(Score { value, bucket: scale.bucket(value) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scale(kind: SurveyKind, max: i32) -> Scale {
        Scale::parse(kind, Some(max)).unwrap()
    }

    #[test]
    fn nps_edges() {
        let s = scale(SurveyKind::Nps, 10);
        assert_eq!(s.bucket(0), Bucket::Detractor);
        assert_eq!(s.bucket(6), Bucket::Detractor);
        assert_eq!(s.bucket(7), Bucket::Passive);
        assert_eq!(s.bucket(8), Bucket::Passive);
        assert_eq!(s.bucket(9), Bucket::Promoter);
        assert_eq!(s.bucket(10), Bucket::Promoter);
    }

    #[test]
    fn csat_top_boxes_per_scale() {
        for (max, first_satisfied) in [(3, 3), (5, 4), (7, 6), (10, 8)] {
            let s = scale(SurveyKind::Csat, max);
            assert_eq!(s.bucket(first_satisfied), Bucket::Satisfied, "max {max}");
            assert_eq!(s.bucket(first_satisfied - 1), Bucket::Unsatisfied, "max {max}");
            assert_eq!(s.bucket(max), Bucket::Satisfied);
            assert_eq!(s.bucket(1), Bucket::Unsatisfied);
        }
    }

    #[test]
    fn ces_agree_per_scale() {
        let s7 = scale(SurveyKind::Ces, 7);
        assert_eq!(s7.bucket(5), Bucket::Agree);
        assert_eq!(s7.bucket(4), Bucket::NotAgree);
        let s5 = scale(SurveyKind::Ces, 5);
        assert_eq!(s5.bucket(4), Bucket::Agree);
        assert_eq!(s5.bucket(3), Bucket::NotAgree);
    }

    #[test]
    fn scales_outside_the_allowed_set_are_refused() {
        assert!(Scale::parse(SurveyKind::Nps, Some(5)).is_err());
        assert!(Scale::parse(SurveyKind::Csat, Some(4)).is_err());
        assert!(Scale::parse(SurveyKind::Ces, Some(10)).is_err());
        assert_eq!(Scale::parse(SurveyKind::Csat, None).unwrap().max, 5);
        assert_eq!(Scale::parse(SurveyKind::Ces, None).unwrap().max, 7);
    }

    #[test]
    fn scores_off_the_scale_or_missing_name_the_score_field() {
        let s = scale(SurveyKind::Nps, 10);
        for raw in [Some(-1), Some(11), None] {
            match Score::parse(s, raw) {
                Err(AppError::InvalidArgument(v)) => assert_eq!(v[0].field, "score"),
                other => panic!("expected invalid argument, got {other:?}"),
            }
        }
        assert!(Score::parse(scale(SurveyKind::Csat, 5), Some(0)).is_err());
        assert_eq!(Score::parse(s, Some(0)).unwrap().bucket, Bucket::Detractor);
    }

    #[test]
    fn default_thresholds_are_the_unhappy_boxes() {
        assert_eq!(scale(SurveyKind::Nps, 10).default_follow_up_threshold(), 6);
        assert_eq!(scale(SurveyKind::Csat, 3).default_follow_up_threshold(), 1);
        assert_eq!(scale(SurveyKind::Csat, 5).default_follow_up_threshold(), 2);
        assert_eq!(scale(SurveyKind::Csat, 7).default_follow_up_threshold(), 2);
        assert_eq!(scale(SurveyKind::Csat, 10).default_follow_up_threshold(), 4);
        assert_eq!(scale(SurveyKind::Ces, 7).default_follow_up_threshold(), 3);
        assert_eq!(scale(SurveyKind::Ces, 5).default_follow_up_threshold(), 2);
    }

    #[test]
    fn bucket_ranges_cover_the_scale_exactly_once() {
        for (kind, max) in [
            (SurveyKind::Nps, 10),
            (SurveyKind::Csat, 3),
            (SurveyKind::Csat, 5),
            (SurveyKind::Csat, 7),
            (SurveyKind::Csat, 10),
            (SurveyKind::Ces, 5),
            (SurveyKind::Ces, 7),
        ] {
            let s = scale(kind, max);
            for score in s.min()..=s.max {
                let hits: Vec<_> = s.bucket_ranges().into_iter().filter(|r| r.min <= score && score <= r.max).collect();
                assert_eq!(hits.len(), 1);
                assert_eq!(hits[0].bucket, s.bucket(score));
            }
        }
    }
}
