//! Properties: headers of every era generated with random name case, separators, key order,
//! whitespace and values (well-formed or malformed) must parse back to exactly what was
//! generated, newest era winning field by field; obs-text and arbitrary ASCII never panic;
//! legacy bodies, nested or flat, round-trip.

use http::{HeaderName, HeaderValue};
use proptest::prelude::*;
use serde_json::json;

use super::super::*;
use super::HEADER_NAMES;

/// A field as one era renders it.
#[derive(Debug, Clone)]
enum Slot<T> {
    Absent,
    Good(String, T),
    Bad(String),
}

impl<T: Clone> Slot<T> {
    fn good(&self) -> Option<T> {
        match self {
            Slot::Good(_, value) => Some(value.clone()),
            _ => None,
        }
    }

    fn text(&self) -> Option<&str> {
        match self {
            Slot::Absent => None,
            Slot::Good(text, _) | Slot::Bad(text) => Some(text),
        }
    }
}

fn count() -> impl Strategy<Value = (String, u64)> {
    prop_oneof![0u64..=1_000, 0u64..=MAX_COUNT].prop_map(|n| (n.to_string(), n))
}

/// Decimal seconds with 0 to 3 places in 0..=3600, and the exact Duration it denotes.
fn decimal() -> impl Strategy<Value = (String, Duration)> {
    (0u32..=3).prop_flat_map(|places| {
        let scale = 10u64.pow(places);
        (0..=MAX_SECONDS * scale).prop_map(move |units| {
            let text = match places {
                0 => units.to_string(),
                _ => format!(
                    "{}.{:0w$}",
                    units / scale,
                    units % scale,
                    w = places as usize
                ),
            };
            (text, Duration::from_nanos(units * (1_000_000_000 / scale)))
        })
    })
}

/// Values every field must reject. None contains `,`, `;` or `=`, so a bad value never
/// splits into well-formed parts.
fn malformed() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z][a-zA-Z0-9 ._:/-]{0,10}",
        (1u64..=u64::MAX).prop_map(|n| format!("-{n}")),
        "-[0-9]{0,3}\\.[0-9]{1,3}",
        "[0-9]{21,30}",
        (MAX_COUNT + 1..=u64::MAX).prop_map(|n| n.to_string()),
        prop::sample::select(vec![
            "", " ", "NaN", "nan", "inf", "-inf", "Infinity", "1e3", "0x10", "1.2.3", ".", "+",
            "-0", "\"\"", "1 2",
        ])
        .prop_map(String::from),
    ]
}

fn slot<T: Clone + std::fmt::Debug>(
    good: impl Strategy<Value = (String, T)>,
    with_bad: bool,
) -> impl Strategy<Value = Slot<T>> {
    let bad_weight = if with_bad { 1 } else { 0 };
    prop_oneof![
        1 => Just(Slot::Absent),
        2 => good.prop_map(|(text, value)| Slot::Good(text, value)),
        bad_weight => malformed().prop_map(Slot::Bad),
    ]
}

/// One era's fields. `window` is only rendered by the 2022 era.
#[derive(Debug, Clone)]
struct Era {
    limit: Slot<u64>,
    remaining: Slot<u64>,
    reset: Slot<Duration>,
    window: Slot<Duration>,
}

fn era(with_bad: bool) -> impl Strategy<Value = Era> {
    (
        slot(count(), with_bad),
        slot(count(), with_bad),
        slot(decimal(), with_bad),
        slot(decimal(), with_bad),
    )
        .prop_map(|(limit, remaining, reset, window)| Era {
            limit,
            remaining,
            reset,
            window,
        })
}

/// Random choices for rendering, drawn in order and reused cyclically.
struct Dice(Vec<u8>, usize);

impl Dice {
    fn roll(&mut self) -> usize {
        self.1 += 1;
        usize::from(self.0[self.1 % self.0.len()])
    }

    fn pick<T: Copy>(&mut self, options: &[T]) -> T {
        options[self.roll() % options.len()]
    }

    fn ws(&mut self) -> &'static str {
        self.pick(&["", "", " ", "  ", "\t", " \t "])
    }

    fn pad(&mut self, text: &str) -> String {
        format!("{}{text}{}", self.ws(), self.ws())
    }

    fn cased(&mut self, name: &str) -> String {
        name.chars()
            .map(|c| match self.roll() % 2 {
                0 => c,
                _ => c.to_ascii_uppercase(),
            })
            .collect()
    }

    fn name(&mut self, name: &str) -> HeaderName {
        HeaderName::from_bytes(self.cased(name).as_bytes()).unwrap()
    }

    fn insert(&mut self, map: &mut HeaderMap, name: &str, value: &str) {
        let name = self.name(name);
        map.insert(name, HeaderValue::from_str(value).unwrap());
    }
}

fn render_2017(era: &Era, dice: &mut Dice, map: &mut HeaderMap) {
    for (name, slot) in [
        ("x-rate-limit-limit", era.limit.text()),
        ("x-rate-limit-remaining", era.remaining.text()),
        ("x-rate-limit-reset", era.reset.text()),
    ] {
        if let Some(text) = slot {
            let value = dice.pad(text);
            dice.insert(map, name, &value);
        }
    }
}

fn render_2022(era: &Era, dice: &mut Dice, map: &mut HeaderMap) {
    let limit = era.limit.text();
    let route = dice.roll() % 3; // 0: policy list only, 1: ratelimit-limit only, 2: both
    if let Some(text) = limit.filter(|_| route != 0) {
        let value = dice.pad(text);
        dice.insert(map, "ratelimit-limit", &value);
    }
    if (limit.is_some() && route != 1) || era.window.text().is_some() {
        let first = dice.pad(limit.unwrap_or(""));
        let policy = match era.window.text() {
            None => first,
            Some(w) => format!(
                "{first},{}{first};w={w}, 100{};{}w={w}",
                dice.ws(),
                dice.ws(),
                dice.ws()
            ),
        };
        dice.insert(map, "x-ratelimit-limit", &policy);
    }
    for (name, slot) in [
        ("ratelimit-remaining", era.remaining.text()),
        ("ratelimit-reset", era.reset.text()),
    ] {
        if let Some(text) = slot {
            let value = dice.pad(text);
            dice.insert(map, name, &value);
        }
    }
}

/// `RateLimit`, shuffled, random key case and separators, plus `junk` parts.
fn render_structured(era: &Era, junk: &[String], dice: &mut Dice, map: &mut HeaderMap) {
    let mut parts: Vec<String> = junk.to_vec();
    for (key, slot) in [
        ("limit", era.limit.text()),
        ("remaining", era.remaining.text()),
        ("reset", era.reset.text()),
    ] {
        let Some(text) = slot else { continue };
        let key = dice.cased(key);
        parts.push(format!("{}{key}{}={text}", dice.ws(), dice.ws()));
    }
    if parts.is_empty() {
        return;
    }
    for i in (1..parts.len()).rev() {
        parts.swap(i, dice.roll() % (i + 1));
    }
    let mut value = parts[0].clone();
    for part in &parts[1..] {
        value.push(dice.pick(&[',', ';']));
        value.push_str(dice.ws());
        value.push_str(part);
    }
    dice.insert(map, "ratelimit", &value);
}

/// Parts the structured header must skip: no `=`, unknown keys, no key, and known keys with
/// malformed values (which must not erase a well-formed duplicate).
fn junk() -> impl Strategy<Value = Vec<String>> {
    let part = prop_oneof![
        "[a-zA-Z0-9 ]{0,8}",
        "(w|r|t|q|limits|remain|resets|policy)=[0-9]{1,3}",
        "=[0-9]{1,3}",
        ("(limit|remaining|reset|LIMIT|Remaining|reSet)", malformed())
            .prop_map(|(key, value)| format!("{key}={value}")),
    ];
    proptest::collection::vec(part, 0..3)
}

fn newest<T: Clone>(slots: [&Slot<T>; 3]) -> Option<T> {
    slots.iter().rev().find_map(|slot| slot.good())
}

fn check_eras(eras: [Era; 3], junk: Vec<String>, retry: Slot<Duration>, dice: Vec<u8>) {
    let mut dice = Dice(dice, 0);
    let mut map = HeaderMap::new();
    render_2017(&eras[0], &mut dice, &mut map);
    render_2022(&eras[1], &mut dice, &mut map);
    render_structured(&eras[2], &junk, &mut dice, &mut map);
    if let Some(text) = retry.text() {
        let value = dice.pad(text);
        dice.insert(&mut map, "retry-after", &value);
    }

    let info = RateLimitInfo::from_headers(&map);
    let [old, mid, new] = &eras;
    assert_eq!(info.limit, newest([&old.limit, &mid.limit, &new.limit]));
    assert_eq!(
        info.remaining,
        newest([&old.remaining, &mid.remaining, &new.remaining])
    );
    assert_eq!(info.reset, newest([&old.reset, &mid.reset, &new.reset]));
    assert_eq!(info.window, mid.window.good());
    assert_eq!(info.retry_after, retry.good());
    assert_eq!(info.wait_hint(), info.reset.or(info.retry_after));

    let raw = info.raw_header.unwrap_or_default();
    let has = |name: &str| map.contains_key(name);
    if has("ratelimit") {
        assert!(raw.starts_with("ratelimit: "), "{raw}");
    } else if [
        "ratelimit-limit",
        "ratelimit-remaining",
        "ratelimit-reset",
        "x-ratelimit-limit",
    ]
    .iter()
    .any(|name| has(name))
    {
        assert!(raw.contains("ratelimit-"), "{raw}");
        assert!(!raw.contains("x-rate-limit-"), "{raw}");
    } else if has("x-rate-limit-limit")
        || has("x-rate-limit-remaining")
        || has("x-rate-limit-reset")
    {
        assert!(raw.starts_with("x-rate-limit-"), "{raw}");
    } else {
        assert_eq!(raw, "");
    }
}

fn retry_after(with_bad: bool) -> impl Strategy<Value = Slot<Duration>> {
    slot(
        (0u64..=MAX_SECONDS).prop_map(|s| (s.to_string(), Duration::from_secs(s))),
        with_bad,
    )
}

fn dice() -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 1..64)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn well_formed_headers_round_trip(
        eras in [era(false), era(false), era(false)],
        retry in retry_after(false),
        dice in dice(),
    ) {
        check_eras(eras, Vec::new(), retry, dice);
    }

    #[test]
    fn malformed_values_are_ignored(
        eras in [era(true), era(true), era(true)],
        junk in junk(),
        retry in retry_after(true),
        dice in dice(),
    ) {
        check_eras(eras, junk, retry, dice);
    }

    #[test]
    fn any_visible_ascii_is_safe(values in proptest::collection::vec("[ -~\t]{0,40}", 9)) {
        let mut map = HeaderMap::new();
        for (name, value) in HEADER_NAMES.iter().zip(&values) {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        let info = RateLimitInfo::from_headers(&map);
        let cap = Duration::from_secs(MAX_SECONDS);
        prop_assert!(info.reset.is_none_or(|d| d <= cap));
        prop_assert!(info.window.is_none_or(|d| d <= cap));
        prop_assert!(info.limit.is_none_or(|n| n <= MAX_COUNT));
    }

    #[test]
    fn obs_text_values_are_ignored(
        values in proptest::collection::vec(
            (prop::sample::select(vec!["limit=100, remaining=50, reset=5", "60, 60;w=1", "4.96",
                "320", ""]),
             proptest::collection::vec(prop_oneof![32u8..127, Just(b'\t'), 128u8..=255], 0..8),
             128u8..=255, any::<prop::sample::Index>()), 9),
        dice in dice(),
    ) {
        // Every rate-limit header holds obs-text: nothing is learned, whatever else it says.
        let mut map = HeaderMap::new();
        let mut dice = Dice(dice, 0);
        for (name, (text, mut bytes, high, at)) in HEADER_NAMES.iter().zip(values) {
            bytes.extend_from_slice(text.as_bytes());
            bytes.insert(at.index(bytes.len() + 1), high);
            let name = dice.name(name);
            map.insert(name, HeaderValue::from_bytes(&bytes).unwrap());
        }
        prop_assert_eq!(RateLimitInfo::from_headers(&map), RateLimitInfo::default());
    }

    #[test]
    fn decimal_seconds_parse_exactly((text, expected) in decimal(), quoted in any::<bool>()) {
        let text = if quoted { format!("\"{text}\"") } else { text };
        prop_assert_eq!(parse_seconds(&text), Some(expected));
    }

    #[test]
    fn legacy_body_round_trips(
        (reset_text, reset) in decimal(),
        (limit_text, limit) in count(),
        (window_text, window) in decimal(),
        nested in any::<bool>(),
        reset_as_string in any::<bool>(),
        limit_as_string in any::<bool>(),
        kind in prop::sample::select(vec!["key", "org"]),
        header_reset in proptest::option::of(decimal()),
    ) {
        let number = |text: &str| serde_json::from_str::<Value>(text).unwrap();
        let pick = |as_string: bool, text: &str| {
            if as_string { Value::String(text.to_owned()) } else { number(text) }
        };
        let fields = json!({
            "message": "API call count exceeded for this period",
            "rate_reset": pick(reset_as_string, &reset_text),
            "rate_limit": pick(limit_as_string, &limit_text),
            "rate_window": number(&window_text),
            "rate_limit_type": kind,
            "rate_endpoint_group": "99ad0b85",
        });
        let body = if nested { json!({ "error": fields }) } else { fields };

        let mut info = RateLimitInfo::default();
        if let Some((_, header)) = &header_reset {
            info.reset = Some(*header);
        }
        info.merge_legacy_body(&body);
        let got = info.reset.unwrap();
        let want = header_reset.map_or(reset, |(_, header)| header);
        let off = got.abs_diff(want);
        prop_assert!(off <= Duration::from_micros(1), "{got:?} vs {want:?}");
        prop_assert!(info.window.unwrap().abs_diff(window) <= Duration::from_micros(1));
        prop_assert_eq!(info.limit, Some(limit));
        prop_assert_eq!(info.limit_type.as_deref(), Some(kind));
        prop_assert_eq!(info.endpoint_group.as_deref(), Some("99ad0b85"));
        prop_assert_eq!(info.remaining, None);
    }
}
