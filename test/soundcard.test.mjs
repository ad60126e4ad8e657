// The sound card's own clock: a PulseAudio pipe source fed fast, and the null sink on the system
// clock; real ffmpeg and PulseAudio.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { usePulse, startVideoRecorder, startTool, tempDir, startFastSource } from './helpers.mjs'

const pulse = usePulse()

test('a sound card whose clock runs 1000 ppm fast (a PulseAudio pipe source fed at 1.001 × 48 kHz): measured, stored, the video retimed to it', async () => {
  const fast = await startFastSource(pulse, 1.001)
  try {
    const cwd = tempDir()
    const video = startVideoRecorder(path.join(cwd, 'feed'))
    await sleep(300)
    const tool = startTool(['feed', '--format', 'pulse', '--device', fast.source, '--no-drift-fix'], {
      cwd,
      env: pulse.env,
    })
    await tool.recording(path.join(cwd, 'feed-audio.wav'))
    await sleep(40000) // bursts of looks at 1 s, 21 s and the stop: enough to tell 1000 ppm from 0
    await video.stop()
    tool.ctrlC()
    const result = await tool.exited
    assert.equal(result.code, 0, result.stderr)
    const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
    const measured = `${sync.audioClockPpm} ± ${sync.audioClockUncertaintyPpm} ppm`
    assert.ok(Math.abs(sync.audioClockPpm - 1000) < 3 * sync.audioClockUncertaintyPpm, measured)
    assert.ok(sync.audioClockUncertaintyPpm < 300, measured)
    assert.ok(Math.abs(sync.audioClockRatio - sync.audioClockHz / 48000) < 1e-12)
    assert.match(result.stderr, /Sound card clock: .* ppm off its nominal 48000 Hz .*the video retimed to it/)
    assert.ok(sync.muxCommand.includes(`-itsscale ${sync.audioClockRatio.toFixed(9)}`), sync.muxCommand)
    const shift = sync.delaySamples - sync.trimSamples
    assert.equal(shift, Math.round(sync.offsetS * 48000 * sync.audioClockRatio), 'the offset counted on the card')
  } finally {
    await fast.stop()
  }
})

test('a sound card on the system clock (the null sink): its clock measured within its uncertainty, nothing corrected', async () => {
  const cwd = tempDir()
  const tool = startTool(['feed', '--format', 'pulse', '--device', pulse.source], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(45000) // three bursts of looks: 1 s, 21 s, 41 s, and the stop's
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8'))
  const measured = `${sync.audioClockPpm} ± ${sync.audioClockUncertaintyPpm} ppm`
  assert.equal(typeof sync.audioClockPpm, 'number', 'measured')
  assert.equal(sync.audioClockRatio, 1, measured)
  assert.ok(Math.abs(sync.audioClockPpm) <= 3 * sync.audioClockUncertaintyPpm, `consistent with 0: ${measured}`)
})
