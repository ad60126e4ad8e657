// A stop while the capture is still starting (before ffmpeg has printed anything, before the
// capture's own stop handler exists): real ffmpeg and a real PulseAudio server.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { usePulse, startTool, tempDir, ffmpegPidsIn, readWav } from './helpers.mjs'

const pulse = usePulse()

test('ctrl-c right after "● Recording" (ffmpeg being spawned): ffmpeg is stopped, no process left, the tool exits', async () => {
  for (let round = 0; round < 3; round++) {
    const cwd = tempDir()
    const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
    // The line is printed once the stop listener exists and before ffmpeg is spawned: a ctrl-c now
    // falls in the window where the capture has no handler yet.
    // The moment it arrives (a poll would come too late: spawning ffmpeg takes a few ms).
    await new Promise((resolve) => {
      const onData = () => {
        if (!tool.stderr.includes('● Recording')) return
        tool.ctrlC()
        tool.child.stderr.off('data', onData)
        resolve()
      }
      tool.child.stderr.on('data', onData)
      tool.child.once('exit', resolve)
    })
    const exited = await Promise.race([tool.exited, new Promise((resolve) => setTimeout(() => resolve(null), 15000))])
    const left = ffmpegPidsIn(cwd)
    for (const pid of left) process.kill(pid, 'SIGKILL') // ours (our temp dir): never leave one behind
    if (!exited) process.kill(-tool.child.pid, 'SIGKILL')
    assert.ok(exited, `the tool did not exit within 15 s of the ctrl-c: ${tool.stderr}`)
    assert.deepEqual(left, [], 'no ffmpeg left recording')
    assert.match(exited.stderr, /■ Stopping/)
    assert.doesNotMatch(exited.stderr, /\n\s+at /, 'no stack trace')
    const wavPath = path.join(cwd, 'feed-audio.wav')
    if (fs.existsSync(wavPath)) {
      // ffmpeg got as far as recording: what it wrote is a whole WAV, and the run went on.
      assert.equal(exited.code, 0, exited.stderr)
      const wav = readWav(wavPath)
      assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'data size finalized')
    } else {
      assert.equal(exited.code, 1, exited.stderr)
      assert.match(exited.stderr, /Stopped before the first sample/)
      assert.ok(!fs.existsSync(path.join(cwd, 'feed-audio-sync.json')), 'no sync file for no recording')
    }
  }
})
