//! "Did you mean": the known name closest to a misspelt one, so an error can offer the fix
//! instead of only refusing.

/// The candidate nearest to `word` (case-insensitive edit distance, a swap of two neighbours
/// counting as one edit), when it is close enough to be a likely typo: at most one edit for
/// short words, about one in three letters for longer ones. Ties go to the first candidate.
pub fn nearest<'a, S: AsRef<str> + ?Sized + 'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a S>,
) -> Option<&'a str> {
    let w: Vec<char> = word.to_lowercase().chars().collect();
    let limit = (w.len() / 3).max(1);
    let mut best: Option<(usize, &str)> = None;
    for c in candidates {
        let c = c.as_ref();
        let cl: Vec<char> = c.to_lowercase().chars().collect();
        if cl == w {
            return Some(c);
        }
        let d = distance(&w, &cl);
        // Two letters that share nothing with the word are no typo of it.
        if d <= limit && d < w.len().max(cl.len()) && best.is_none_or(|(bd, _)| d < bd) {
            best = Some((d, c));
        }
    }
    best.map(|(_, c)| c)
}

/// `; did you mean "x"?`, or nothing when no candidate is close.
pub fn did_you_mean<'a, S: AsRef<str> + ?Sized + 'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a S>,
) -> String {
    match nearest(word, candidates) {
        Some(c) => format!("; did you mean {c:?}?"),
        None => String::new(),
    }
}

/// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps.
fn distance(a: &[char], b: &[char]) -> usize {
    let (n, m) = (a.len(), b.len());
    let mut d = vec![vec![0usize; m + 1]; n + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=n {
        for j in 1..=m {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typos_find_their_name_and_strangers_find_none() {
        let fields = ["status", "body", "file", "content_type"];
        assert_eq!(nearest("stauts", &fields), Some("status"));
        assert_eq!(nearest("bdy", &fields), Some("body"));
        assert_eq!(nearest("Body", &fields), Some("body"));
        assert_eq!(nearest("colour", &fields), None);
        let routes = ["offer", "safe", "shop"];
        assert_eq!(nearest("ofer", &routes), Some("offer"));
        assert_eq!(nearest("landing", &routes), None);
        // Short words: one edit at most, and never a complete replacement.
        assert_eq!(nearest("xy", &["ab", "xa"]), Some("xa"));
        assert_eq!(nearest("xy", &["ab"]), None);
        assert_eq!(
            did_you_mean("contry", &["country", "city"]),
            "; did you mean \"country\"?"
        );
        assert_eq!(did_you_mean("zzz", &["country"]), "");
    }
}
