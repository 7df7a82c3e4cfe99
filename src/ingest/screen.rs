//! Screen width → the screen class of SPEC 2.6 (`screens`).

/// The classes, smallest first.
pub const CLASSES: [&str; 5] = ["xs", "sm", "md", "lg", "xl"];

/// Widths above this are not a screen but a bad value.
const MAX_WIDTH: i64 = 100_000;

/// `xs` (< 576 px), `sm` (576–767), `md` (768–991), `lg` (992–1439), `xl` (≥ 1440); `None`
/// when the width is missing, not positive or absurd (> 100,000).
pub fn screen_class(width: Option<i64>) -> Option<&'static str> {
    let class = match width? {
        w if w <= 0 || w > MAX_WIDTH => return None,
        ..=575 => "xs",
        576..=767 => "sm",
        768..=991 => "md",
        992..=1439 => "lg",
        _ => "xl",
    };
    Some(class)
}

/// True for a class name as [`screen_class`] spells it (for importers, SPEC 3.5).
pub fn is_class(name: &str) -> bool {
    CLASSES.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widths_map_to_classes() {
        for (width, want) in [
            (None, None),
            (Some(i64::MIN), None),
            (Some(-1), None),
            (Some(0), None),
            (Some(1), Some("xs")),
            (Some(375), Some("xs")),
            (Some(575), Some("xs")),
            (Some(576), Some("sm")),
            (Some(767), Some("sm")),
            (Some(768), Some("md")),
            (Some(991), Some("md")),
            (Some(992), Some("lg")),
            (Some(1439), Some("lg")),
            (Some(1440), Some("xl")),
            (Some(3840), Some("xl")),
            (Some(100_000), Some("xl")),
            (Some(100_001), None),
            (Some(i64::MAX), None),
        ] {
            assert_eq!(screen_class(width), want, "{width:?}");
        }
    }

    #[test]
    fn class_names() {
        assert!(CLASSES.iter().all(|c| is_class(c)));
        assert!(!is_class("XL"));
        assert!(!is_class(""));
    }
}
