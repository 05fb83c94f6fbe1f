/**
 * Bounded caches kept as a Map, whose insertion order doubles as the least-recently-used list.
 */

/** Sets `key` to `value` as the most recently used entry of `map`, then drops the least recently used beyond `max`. */
export function setMostRecent<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key); // re-inserted last
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value!);
}
