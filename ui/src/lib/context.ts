import { getContext, setContext } from "svelte";
import { tauriBackend, type Backend } from "./backend";

const key = Symbol("backend");

export function provideBackend(backend: Backend): void {
  setContext(key, backend);
}

/** The backend provided by an ancestor; the real one when none was provided. */
export function useBackend(): Backend {
  return getContext<Backend | undefined>(key) ?? tauriBackend;
}
