// The audio's first sample on real PulseAudio: a pipe source as the microphone (a sample's capture
// time is when its writer wrote it, the truth), and a null sink, where the check must change nothing
// that was right. Real ffmpeg, the tool run as a user would.
import { test } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import {
  usePulse,
  startTool,
  tempDir,
  decodeAudio,
  startPipeSource,
  firstSampleTruth,
  startNoisePlayer,
} from './helpers.mjs'

const pulse = usePulse({ tone: false })

/** The tool recording `device` for `seconds`, stopped by ctrl-c; its sync record and output. */
async function recordFrom(device, seconds) {
  const cwd = tempDir()
  const tool = startTool(['feed', '--format', 'pulse', '--device', device], { cwd, env: pulse.env })
  await tool.recording(path.join(cwd, 'feed-audio.wav'))
  await sleep(seconds * 1000)
  tool.ctrlC()
  const result = await tool.exited
  assert.equal(result.code, 0, result.stderr)
  return { result, sync: JSON.parse(fs.readFileSync(path.join(cwd, 'feed-audio-sync.json'), 'utf8')) }
}

test("a pipe source as the microphone: the first sample's time within 5 ms of when it was written, whatever the stamp says; both kept, a stamp off said", async () => {
  for (let round = 0; round < 3; round++) {
    // Fresh each time: its writer starts before anyone records, so samples queue in the FIFO as a
    // device's would, which is what throws the stamp off.
    const pipe = await startPipeSource(pulse)
    try {
      const { result, sync } = await recordFrom(pipe.source, 3)
      const truthS = firstSampleTruth(pipe, decodeAudio(sync.audioFile))
      const ms = (s) => `${((s - truthS) * 1000).toFixed(1)} ms`
      const figures = `used ${ms(sync.audioStartEpochS)}, stamp ${ms(sync.audioStartStampEpochS)}, envelope ${ms(sync.audioStartEnvelopeEpochS)} (${sync.audioStartCheck})`
      assert.ok(Math.abs(sync.audioStartEpochS - truthS) <= 0.005, figures)
      assert.equal(typeof sync.audioStartStampEpochS, 'number', figures)
      // The envelope is an upper bound: never before the truth (Date.now() truncates by < 1 ms).
      assert.ok(sync.audioStartEnvelopeEpochS >= truthS - 0.001, figures)
      assert.ok(sync.audioStartUncertaintyS > 0 && sync.audioStartUncertaintyS <= 0.005, figures)
      assert.ok(
        Math.abs(sync.audioDeliveryLatencyS - (sync.audioStartEnvelopeEpochS - sync.audioStartStampEpochS)) < 1e-9,
      )
      if (sync.audioStartCheck === 'stamp-late') {
        assert.equal(sync.audioStartSource, 'arrival-envelope')
        const lateMs = Math.round((sync.audioStartStampEpochS - sync.audioStartEnvelopeEpochS) * 1000)
        assert.match(result.stderr, new RegExp(`⚠ The device's start stamp was ${lateMs} ms late`))
      } else assert.equal(sync.audioStartSource, 'ffmpeg-input-start', figures)
    } finally {
      await pipe.stop()
    }
  }
})

test('a null sink playing with a short buffer (no truth there): the start used is the stamp, or within 15 ms of it where the stamp is after the arrival, nothing said', async () => {
  const player = startNoisePlayer(pulse, 'ra_sink')
  try {
    await sleep(500)
    for (let round = 0; round < 2; round++) {
      const { result, sync } = await recordFrom(pulse.source, 3)
      const figures = `stamp − envelope ${((sync.audioStartStampEpochS - sync.audioStartEnvelopeEpochS) * 1000).toFixed(1)} ms (${sync.audioStartCheck})`
      assert.ok(['plausible', 'stamp-late'].includes(sync.audioStartCheck), figures)
      // Measured: the stamp 1–8 ms after the arrival in four of five recordings, else a queue before it.
      assert.ok(Math.abs(sync.audioStartEpochS - sync.audioStartStampEpochS) <= 0.015, figures)
      if (sync.audioStartCheck === 'plausible') assert.equal(sync.audioStartEpochS, sync.audioStartStampEpochS)
      assert.doesNotMatch(result.stderr, /start stamp says/)
    }
  } finally {
    await player.stop()
  }
})
