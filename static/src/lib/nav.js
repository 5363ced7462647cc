// App-wide state: the current path and the signed-in user.
import { signal } from "@preact/signals";

/** The current path; links and navigate() change it without a reload. */
export const path = signal(location.pathname);
/** The signed-in user: null before /me answered, false when signed out. */
export const me = signal(null);

/** Goes to `to` inside the app. */
export function navigate(to) {
  if (to !== location.pathname + location.search) history.pushState(null, "", to);
  path.value = location.pathname;
  scrollTo(0, 0);
}
