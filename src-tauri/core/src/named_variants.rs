//! The one table of names of a fieldless enum whose names leave the process
//! (stored in SQLite, serialized to the GUI and the REST API).

/// Gives a fieldless enum its stored names from one table: `as_str`, `parse`
/// and `ALL`. The `match` in `as_str` is exhaustive, so a variant missing from
/// the table does not compile; the enums' tests check the names against
/// serde's.
macro_rules! named_variants {
    ($ty:ident { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            /// Every variant, in declaration order.
            pub const ALL: &'static [$ty] = &[$($ty::$variant),+];

            /// The stored and serialized name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            /// The variant named `s`, if any.
            pub fn parse(s: &str) -> Option<$ty> {
                match s {
                    $($name => Some($ty::$variant),)+
                    _ => None,
                }
            }
        }
    };
}
