/**
 * `basalt dev` does not take a zombie for a running `basalt dev` (runtime/dev/store-owner.ts): a
 * process killed whose parent has not reaped it still answers signal 0, and the next `basalt dev`
 * on its data was refused (`another basalt dev (pid N) runs…`). Linux only: elsewhere signal 0
 * alone decides.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import path from 'node:path'
import { createInterface } from 'node:readline'
import { describe, expect, it } from 'vitest'
import { processState, reclaimStore } from '../../runtime/dev/store-owner.ts'
import { waitFor } from '../tooling/harness.ts'

describe.runIf(process.platform === 'linux')('a zombie owner of basalt dev data', () => {
  it('counts as gone: its data is reclaimed, not refused', async () => {
    // `sleep 0` exits at once; its parent, sh become `sleep 5` by exec, never reaps it
    const parent = spawn('sh', ['-c', 'sleep 0 & echo $!; exec sleep 5'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const dir = await mkdtemp(path.join(tmpdir(), 'basalt-zombie-'))
    try {
      const [line] = (await once(createInterface({ input: parent.stdout! }), 'line')) as [string]
      const zombie = Number(line)
      const state = async () => processState(await readFile(`/proc/${zombie}/stat`, 'utf8'))
      await waitFor(async () => (await state()) === 'Z', `pid ${zombie} a zombie`)
      expect(() => process.kill(zombie, 0), 'signal 0 reaches a zombie').not.toThrow()

      await writeFile(path.join(dir, 'owner.json'), JSON.stringify({ owner: zombie, server: zombie }))
      const said: string[] = []
      await reclaimStore(dir, (l) => said.push(l))
      expect(said, 'nothing to stop').toEqual([])
      await expect(readFile(path.join(dir, 'owner.json'))).rejects.toThrow(/ENOENT/)
    } finally {
      parent.kill('SIGKILL')
      await rm(dir, { recursive: true, force: true })
    }
  })
})
