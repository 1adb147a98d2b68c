// The official test vectors live outside the repository, in ../shared/vectors (see its README).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'

export const vectorsDir = fileURLToPath(new URL('../../shared/vectors/', import.meta.url))

export function loadVector<T = unknown>(name: string): T {
  return JSON.parse(readFileSync(vectorsDir + name, 'utf8')) as T
}
