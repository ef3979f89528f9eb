//! "Did you mean" for names people mistype.
//!
//! A candidate's distance is the smaller of the optimal-string-alignment distance (edits,
//! with a swap of two neighbours counting as one) to the whole name and to the name's first
//! `query.len()` characters, so `ngnix` is one edit from `nginx-test-7d9c4b6f5-abcde`: people
//! type the start of generated names. Candidates within `max(2, len/3)` edits are kept, the
//! closest first, then by name.

/// Up to `limit` names from `candidates` close to `query`.
pub fn close_names<'a>(
    query: &str,
    candidates: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Vec<String> {
    let query: Vec<char> = query.chars().collect();
    let threshold = (query.len() / 3).max(2);
    let mut scored: Vec<(usize, &str)> = candidates
        .into_iter()
        .filter_map(|name| {
            let chars: Vec<char> = name.chars().collect();
            let whole = osa_distance(&query, &chars);
            let head = osa_distance(&query, &chars[..chars.len().min(query.len())]);
            let d = whole.min(head);
            (d <= threshold).then_some((d, name))
        })
        .collect();
    scored.sort();
    scored.dedup_by(|a, b| a.1 == b.1);
    scored
        .into_iter()
        .take(limit)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
fn osa_distance(a: &[char], b: &[char]) -> usize {
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist(a: &str, b: &str) -> usize {
        osa_distance(
            &a.chars().collect::<Vec<_>>(),
            &b.chars().collect::<Vec<_>>(),
        )
    }

    #[test]
    fn distances() {
        assert_eq!(dist("", "abc"), 3);
        assert_eq!(dist("abc", "abc"), 0);
        assert_eq!(dist("ngnix", "nginx"), 1);
        assert_eq!(dist("kitten", "sitting"), 3);
    }

    #[test]
    fn typos_of_generated_names_find_them() {
        let names = [
            "nettest",
            "nginx-test-7d9c4b6f5-abcde",
            "nginx-test-7d9c4b6f5-fghij",
            "webapp-5f6d8c9b7-xyz12",
        ];
        let got = close_names("ngnix", names, 3);
        assert_eq!(
            got,
            vec!["nginx-test-7d9c4b6f5-abcde", "nginx-test-7d9c4b6f5-fghij"]
        );
        assert_eq!(close_names("netest", names, 3), vec!["nettest"]);
        assert!(close_names("zzzzzz", names, 3).is_empty());
    }
}
