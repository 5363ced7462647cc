//! The one rule for who may see a track, used by the library API, the stream API and `/media/`
//! alike. Each surface turns a denial into its own status code (the API hides everything as
//! 404; `/media/` says 451 or 403), but none decides who may see what.

use crate::accounts::Role;
use crate::library::{Status, Visibility};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Viewer {
    /// Nobody known: public tracks, unlisted ones by id.
    Anonymous,
    /// A request to `/media/` that passed a token or origin-secret check; `grant` when that
    /// token covers this track's objects (or the CDN edge vouches for the viewer).
    Signed {
        /// The token is for this track (or the CDN checked the viewer itself).
        grant: bool,
    },
    /// An editor or admin, signed in or with an API token: manages the library.
    Member,
    /// A listener account: sees and plays what an anonymous visitor may (public tracks, unlisted
    /// ones by id); it only brings playlists, stars and plays of its own.
    Listener,
}

impl Viewer {
    /// The viewer a signed-in user of `role` is.
    pub fn of_role(role: Role) -> Viewer {
        match role {
            Role::Admin | Role::Editor => Viewer::Member,
            Role::Listener => Viewer::Listener,
        }
    }
}

/// True when `viewer` may list every track, whatever its visibility and status, so a listing
/// needs no filter; else listings hold public, playable tracks only. Derived from
/// [`may_view`] (a test checks both agree), for SQL that cannot call it row by row.
pub fn lists_everything(viewer: Viewer) -> bool {
    viewer == Viewer::Member
}

/// What the viewer wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// Find it in a listing or search.
    List,
    /// Read its metadata or cover by id.
    Read,
    /// Get its bytes: a stream URL or an object.
    Play,
}

/// The answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go ahead.
    Allowed,
    /// Taken down by an admin: never played, shown only to members.
    TakenDown,
    /// Private, and the viewer is neither a member nor holding a grant for it.
    Private,
    /// Unlisted: reachable by id, not in anonymous listings.
    Unlisted,
}

/// May `viewer` see a track with this visibility and status for `purpose`?
pub fn may_view(
    viewer: Viewer,
    visibility: Visibility,
    status: Status,
    purpose: Purpose,
) -> Verdict {
    let member = viewer == Viewer::Member;
    let granted = matches!(viewer, Viewer::Member | Viewer::Signed { grant: true });
    match purpose {
        // Members manage the library: they see taken-down and private tracks, but nobody
        // plays a taken-down one.
        Purpose::List | Purpose::Read if member => Verdict::Allowed,
        // An anonymous caller must not learn that a private track exists, even a taken-down one.
        Purpose::Play
            if matches!(viewer, Viewer::Anonymous | Viewer::Listener)
                && visibility == Visibility::Private =>
        {
            Verdict::Private
        }
        _ if status == Status::TakenDown => Verdict::TakenDown,
        _ if visibility == Visibility::Private && !granted => Verdict::Private,
        Purpose::List if visibility == Visibility::Unlisted => Verdict::Unlisted,
        _ => Verdict::Allowed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Purpose::*;
    use Verdict::*;

    fn v(who: Viewer, vis: Visibility, st: Status, p: Purpose) -> Verdict {
        may_view(who, vis, st, p)
    }

    #[test]
    fn listeners_see_what_anonymous_visitors_see() {
        for vis in [
            Visibility::Public,
            Visibility::Unlisted,
            Visibility::Private,
        ] {
            for st in Status::ALL {
                for p in [List, Read, Play] {
                    assert_eq!(
                        v(Viewer::Listener, vis, st, p),
                        v(Viewer::Anonymous, vis, st, p)
                    );
                }
            }
        }
    }

    #[test]
    fn lists_everything_agrees_with_the_table() {
        for who in [
            Viewer::Anonymous,
            Viewer::Listener,
            Viewer::Member,
            Viewer::Signed { grant: true },
            Viewer::Signed { grant: false },
        ] {
            let all = [
                Visibility::Public,
                Visibility::Unlisted,
                Visibility::Private,
            ]
            .iter()
            .all(|vis| {
                Status::ALL
                    .iter()
                    .all(|st| v(who, *vis, *st, List) == Allowed)
            });
            assert_eq!(lists_everything(who), all, "{who:?}");
            // Otherwise only public tracks that are not taken down may be listed (signed
            // viewers are `/media/` requests, which never list).
            if matches!(who, Viewer::Anonymous | Viewer::Listener) {
                for vis in [Visibility::Unlisted, Visibility::Private] {
                    assert_ne!(v(who, vis, Status::Ready, List), Allowed);
                }
                assert_ne!(v(who, Visibility::Public, Status::TakenDown, List), Allowed);
            }
        }
    }

    #[test]
    fn members_see_everything_but_play_nothing_taken_down() {
        for vis in [
            Visibility::Public,
            Visibility::Unlisted,
            Visibility::Private,
        ] {
            for st in Status::ALL {
                assert_eq!(v(Viewer::Member, vis, st, List), Allowed);
                assert_eq!(v(Viewer::Member, vis, st, Read), Allowed);
                let play = if st == Status::TakenDown {
                    TakenDown
                } else {
                    Allowed
                };
                assert_eq!(v(Viewer::Member, vis, st, Play), play);
            }
        }
    }

    #[test]
    fn anonymous_viewers_get_public_and_unlisted_by_id() {
        let a = Viewer::Anonymous;
        assert_eq!(v(a, Visibility::Public, Status::Ready, List), Allowed);
        assert_eq!(v(a, Visibility::Unlisted, Status::Ready, List), Unlisted);
        assert_eq!(v(a, Visibility::Unlisted, Status::Ready, Read), Allowed);
        assert_eq!(
            v(a, Visibility::Unlisted, Status::Processing, Play),
            Allowed
        );
        assert_eq!(v(a, Visibility::Private, Status::Ready, Read), Private);
        assert_eq!(v(a, Visibility::Public, Status::TakenDown, Read), TakenDown);
        assert_eq!(v(a, Visibility::Public, Status::TakenDown, Play), TakenDown);
        // Existence of a private track is not revealed by a 451.
        assert_eq!(v(a, Visibility::Private, Status::TakenDown, Play), Private);
    }

    #[test]
    fn signed_requests_play_private_tracks_only_with_a_grant() {
        let yes = Viewer::Signed { grant: true };
        let no = Viewer::Signed { grant: false };
        assert_eq!(v(yes, Visibility::Private, Status::Ready, Play), Allowed);
        assert_eq!(v(no, Visibility::Private, Status::Ready, Play), Private);
        assert_eq!(v(no, Visibility::Public, Status::Ready, Play), Allowed);
        assert_eq!(
            v(no, Visibility::Private, Status::TakenDown, Play),
            TakenDown
        );
        assert_eq!(
            v(yes, Visibility::Public, Status::TakenDown, Play),
            TakenDown
        );
    }
}
