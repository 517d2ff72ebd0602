use super::*;
use std::collections::BTreeMap;

/// A small XML well-formedness check: tags nest and close, attribute quotes
/// pair up, text has no stray `<` or bare `&`. Returns the element names seen.
fn check_xml(svg: &str) -> Vec<String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut rest = svg;
    while let Some(open) = rest.find('<') {
        let text = &rest[..open];
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare & in text"
            );
        }
        let close = rest[open..].find('>').expect("unclosed tag") + open;
        let tag = &rest[open + 1..close];
        assert!(!tag.contains('<'), "`<` inside tag {tag}");
        assert_eq!(tag.matches('"').count() % 2, 0, "unpaired quote in {tag}");
        if let Some(name) = tag.strip_prefix('/') {
            assert_eq!(
                stack.pop().as_deref(),
                Some(name.trim()),
                "mismatched </{name}>"
            );
        } else {
            let name: String = tag
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            assert!(!name.is_empty(), "bad tag <{tag}>");
            seen.push(name.clone());
            if !tag.ends_with('/') {
                stack.push(name);
            }
        }
        rest = &rest[close + 1..];
    }
    assert!(stack.is_empty(), "unclosed elements: {stack:?}");
    assert!(rest.trim().is_empty());
    seen
}

fn sample(t_ms: u64, open: usize, rss: Option<u64>) -> Sample {
    Sample {
        t_ms,
        open,
        rss_bytes: rss,
        rss_anon_bytes: rss.map(|r| r / 2),
        phase: "x".into(),
        detail: BTreeMap::new(),
    }
}

fn span(stage: Stage, pulse: Option<PulseKind>, start_ms: u64, end_ms: u64) -> PhaseSpan {
    PhaseSpan {
        stage,
        pulse,
        index: 1,
        label: String::new(),
        start_ms,
        end_ms,
    }
}

#[test]
fn chart_is_well_formed_with_all_parts() {
    let samples: Vec<_> = (0..100)
        .map(|i| {
            let open = if (20..40).contains(&i) { 9000 } else { 0 };
            // A failed read in the middle breaks the memory lines.
            let rss = (i != 50).then_some((5 + open as u64 / 100) << 20);
            sample(i * 200, open, rss)
        })
        .collect();
    let phases = vec![
        span(Stage::Baseline, None, 0, 4000),
        span(Stage::Connect, Some(PulseKind::Big), 4000, 5000),
        span(Stage::Close, Some(PulseKind::Big), 7800, 8000),
        span(Stage::Connect, Some(PulseKind::Small), 12000, 12100),
        span(Stage::Close, Some(PulseKind::Small), 13000, 13100),
    ];
    let memory = super::super::summary::memory(&samples, &phases, 9000);
    let svg = render("spike <ebbsocks> & co", &samples, &phases, &memory);
    assert!(svg.starts_with("<svg"));
    assert!(svg.ends_with("</svg>\n"));
    let names = check_xml(&svg);
    // open connections, anon x2 and RSS x2 (broken at the failed read)
    assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 5);
    assert!(names.iter().filter(|n| *n == "rect").count() >= 4);
    assert!(names.contains(&"circle".to_string()));
    assert!(svg.contains("spike &lt;ebbsocks&gt; &amp; co"));
    assert!(svg.contains("memory (MiB)") && svg.contains("open connections"));
}

#[test]
fn chart_without_memory_or_samples_still_renders() {
    let samples: Vec<_> = (0..10).map(|i| sample(i * 100, i as usize, None)).collect();
    let svg = render("raw", &samples, &[], &Memory::default());
    let names = check_xml(&svg);
    assert_eq!(names.iter().filter(|n| *n == "polyline").count(), 1);
    check_xml(&render("empty", &[], &[], &Memory::default()));
}
