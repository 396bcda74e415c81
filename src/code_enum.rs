//! [`code_enum!`]: a firmware number as an enum with its upper-case name, where numbers outside
//! the map stay data (`Unknown(n)`), never a panic. Used for APF disconnect reasons, PT_STATUS and
//! the WS-MAN methods' ReturnValue maps.

/// Declares `pub enum $ty { …, Unknown(u32) }` with `from_u32`, `code`, `name` (`"UNKNOWN"` for
/// unknown numbers) and `Display` as `NAME (n)`.
///
/// The second form also gives each value a meaning: `Variant = n => "NAME", "meaning";`, with
/// `unknown = "…"` the meaning of numbers outside the map.
macro_rules! code_enum {
    (
        $(#[$doc:meta])*
        $ty:ident, unknown = $unknown:literal {
            $($variant:ident = $value:expr => $name:literal, $meaning:literal;)*
        }
    ) => {
        $crate::code_enum::code_enum! {
            $(#[$doc])*
            $ty { $($variant = $value => $name,)* }
        }

        impl $ty {
            /// What the value means, in a few words.
            pub fn meaning(self) -> &'static str {
                match self {
                    $($ty::$variant => $meaning,)*
                    $ty::Unknown(_) => $unknown,
                }
            }
        }
    };
    ($(#[$doc:meta])* $ty:ident { $($variant:ident = $value:expr => $name:literal,)* }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
        pub enum $ty {
            $($variant,)*
            Unknown(u32),
        }

        impl $ty {
            pub fn from_u32(v: u32) -> $ty {
                match v {
                    $($value => $ty::$variant,)*
                    other => $ty::Unknown(other),
                }
            }

            pub fn code(self) -> u32 {
                match self {
                    $($ty::$variant => $value,)*
                    $ty::Unknown(v) => v,
                }
            }

            /// The upper-case name (the type says whose spelling); `"UNKNOWN"` for other numbers.
            pub fn name(self) -> &'static str {
                match self {
                    $($ty::$variant => $name,)*
                    $ty::Unknown(_) => "UNKNOWN",
                }
            }
        }

        impl ::std::fmt::Display for $ty {
            /// `NAME (n)`, as the agent prints every firmware number.
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                write!(f, "{} ({})", self.name(), self.code())
            }
        }
    };
}

pub(crate) use code_enum;

#[cfg(test)]
mod tests {
    code_enum! {
        /// A test map.
        Plain { One = 1 => "ONE", Two = 2 => "TWO", }
    }

    code_enum! {
        /// A test map with meanings.
        Meant, unknown = "not in the map" { Zero = 0 => "ZERO", "nothing"; }
    }

    #[test]
    fn known_and_unknown_numbers_round_trip_with_names_and_meanings() {
        assert_eq!(Plain::from_u32(2), Plain::Two);
        assert_eq!(Plain::Two.to_string(), "TWO (2)");
        assert_eq!(Plain::from_u32(7), Plain::Unknown(7));
        assert_eq!(Plain::Unknown(7).to_string(), "UNKNOWN (7)");
        for v in 0..10 {
            assert_eq!(Plain::from_u32(v).code(), v);
        }
        assert_eq!(Meant::from_u32(0).meaning(), "nothing");
        assert_eq!(Meant::from_u32(1).meaning(), "not in the map");
        assert_eq!(Meant::Zero.name(), "ZERO");
    }
}
