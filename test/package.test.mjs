// The distribution paths, for real: npm pack, then npx from an empty folder; npm install -g;
// npx . in the checkout. They install zx and minimist from the npm registry as a user's would.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ROOT, startPulse, startTool, tempDir, run, readWav, expectedAudioMark } from './helpers.mjs'

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
let tarball
let pulse

before(async () => {
  const packDir = tempDir('ra-pack-')
  const packed = run('npm', ['pack', '--json', '--pack-destination', packDir], { cwd: ROOT })
  assert.equal(packed.status, 0, packed.stderr)
  tarball = path.join(packDir, JSON.parse(packed.stdout.slice(packed.stdout.search(/^\[/m)))[0].filename)
  pulse = await startPulse()
})
after(async () => {
  await pulse?.stop()
})

test('the tarball holds the built JavaScript, the .mts source and the README, and nothing else', () => {
  const listed = run('tar', ['tzf', tarball]).stdout.trim().split('\n').sort()
  assert.deepEqual(listed, [
    'package/README.md',
    'package/dist/record-audio.mjs',
    'package/package.json',
    'package/record-audio.mts',
  ])
})

test('npx --package=<tarball> from an empty folder: --version and --help work', () => {
  const cwd = tempDir('ra-npx-')
  const version = run('npx', ['--yes', `--package=${tarball}`, 'record-audio', '--version'], { cwd })
  assert.equal(version.status, 0, version.stderr)
  assert.equal(version.stdout.trim(), pkg.version)
  const help = run('npx', ['--yes', `--package=${tarball}`, 'record-audio', '--help'], { cwd })
  assert.equal(help.status, 0, help.stderr)
  assert.match(help.stdout, /Usage: record-audio \[<feed_id>\] \[flags\]/)
  assert.deepEqual(fs.readdirSync(cwd), [], 'npx leaves the folder as it was')
})

test('npx --package=<tarball>: a real recording stopped with ctrl-c leaves a finalized WAV and its sync file', async () => {
  const cwd = tempDir('ra-npx-')
  const tool = startTool(['npx-feed', '--format', 'pulse', '--device', pulse.source], {
    cwd,
    env: pulse.env,
    command: ['npx', '--yes', `--package=${tarball}`, 'record-audio'],
  })
  await tool.recording(path.join(cwd, 'npx-feed-audio.wav'), 60000)
  await sleep(1500)
  tool.ctrlC()
  await tool.exited
  // ✔ when the device's stamp and the samples' arrival agree; the line is there either way.
  const record = JSON.parse(fs.readFileSync(path.join(cwd, 'npx-feed-audio-sync.json'), 'utf8'))
  assert.match(tool.stderr, new RegExp(`^${expectedAudioMark(record)} Audio: npx-feed-audio\\.wav`, 'm'))
  const wav = readWav(path.join(cwd, 'npx-feed-audio.wav'))
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'header finalized')
  assert.ok(wav.samples > 48000)
  assert.ok(fs.existsSync(path.join(cwd, 'npx-feed-audio-sync.json')))
})

test('npx where /bin/sh is bash (Fedora, Arch, macOS): npm forwards the ctrl-c as a second SIGINT; still one clean stop', async () => {
  const cwd = tempDir('ra-npx-')
  const tool = startTool(['bash-feed', '--format', 'pulse', '--device', pulse.source], {
    cwd,
    env: { ...pulse.env, npm_config_script_shell: '/bin/bash' },
    command: ['npx', '--yes', `--package=${tarball}`, 'record-audio'],
  })
  await tool.recording(path.join(cwd, 'bash-feed-audio.wav'), 60000)
  await sleep(1500)
  const stopAtS = Date.now() / 1000
  tool.ctrlC()
  await tool.exited
  assert.doesNotMatch(tool.stderr, /Stopping now/)
  const sync = JSON.parse(fs.readFileSync(path.join(cwd, 'bash-feed-audio-sync.json'), 'utf8'))
  const wav = readWav(path.join(cwd, 'bash-feed-audio.wav'))
  assert.equal(wav.dataOffset + wav.dataSize, wav.fileBytes, 'header finalized')
  const missingS = stopAtS - sync.audioStartEpochS - wav.samples / 48000
  assert.ok(missingS < 0.02, `every sample up to the stop: ${(missingS * 1000).toFixed(1)} ms missing`)
})

test('npm install -g <tarball>: the record-audio command is on the PATH of that prefix', () => {
  const prefix = tempDir('ra-global-')
  const installed = run('npm', ['install', '--global', '--prefix', prefix, tarball])
  assert.equal(installed.status, 0, installed.stderr)
  const version = run(path.join(prefix, 'bin', 'record-audio'), ['--version'])
  assert.equal(version.status, 0, version.stderr)
  assert.equal(version.stdout.trim(), pkg.version)
})

test('npx . in the checkout (after npm install) runs the tool', () => {
  const version = run('npx', ['.', '--version'], { cwd: ROOT })
  assert.equal(version.status, 0, version.stderr)
  assert.equal(version.stdout.trim(), pkg.version)
})
