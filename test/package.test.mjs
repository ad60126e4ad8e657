// The distribution paths, for real: npm pack, then npx from an empty folder; npm install -g;
// npx . in the checkout. They install zx and minimist from the npm registry as a user's would.
import { test, before, after } from 'node:test'
import assert from 'node:assert/strict'
import fs from 'node:fs'
import path from 'node:path'
import { createHash } from 'node:crypto'
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

// ── An edited settings block is what the next run uses (issue: no stale build, ever) ──────────

const SUFFIX_LINE = /^const MUXED_SUFFIX = .*$/m
const editSuffix = (file, suffix) =>
  fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace(SUFFIX_LINE, `const MUXED_SUFFIX = '${suffix}'`))
const shownSuffix = (help) => help.match(/--muxed-suffix=….*\n\s+default: (\S+)/)?.[1]

test('a checkout after npm install: two edits of the settings block, each used by the next npx . run', () => {
  // A copy of the checkout as git has it, built as `npm install` builds it (prepare), its node_modules shared.
  const checkout = tempDir('ra-checkout-')
  for (const file of ['package.json', 'record-audio.mts'])
    fs.copyFileSync(path.join(ROOT, file), path.join(checkout, file))
  fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(checkout, 'node_modules'))
  const built = run('npm', ['run', 'build'], { cwd: checkout })
  assert.equal(built.status, 0, built.stderr)
  for (const suffix of ['-first-edit.mp4', '-second-edit.mp4']) {
    editSuffix(path.join(checkout, 'record-audio.mts'), suffix)
    const help = run('npx', ['.', '--help'], { cwd: checkout })
    assert.equal(help.status, 0, help.stderr)
    assert.equal(shownSuffix(help.stdout), suffix)
  }
  // From a data folder, through the checkout's path, the same.
  const lab = tempDir('ra-lab-')
  const help = run('npx', ['--yes', checkout, '--help'], { cwd: lab })
  assert.equal(help.status, 0, help.stderr)
  assert.equal(shownSuffix(help.stdout), '-second-edit.mp4')
})

test('an installed tarball whose source was edited under node_modules refuses in one line, never the old value', () => {
  const lab = tempDir('ra-installed-')
  const installed = run('npm', ['install', '--no-audit', '--no-fund', tarball], { cwd: lab })
  assert.equal(installed.status, 0, installed.stderr)
  const bin = path.join(lab, 'node_modules', '.bin', 'record-audio')
  assert.equal(shownSuffix(run(bin, ['--help']).stdout), '-with-audio.mp4', 'as packed')
  editSuffix(path.join(lab, 'node_modules', 'record-audio', 'record-audio.mts'), '-edited.mp4')
  const help = run(bin, ['--help'])
  assert.equal(help.status, 1)
  assert.equal(help.stdout, '', 'no help with the old default')
  assert.match(help.stderr, /^record-audio: .*record-audio\.mts was edited after its build.*record-audio init/)
  assert.equal(help.stderr.trim().split('\n').length, 1)
  // The way out it names works: init copies the edited source.
  const init = run(bin, ['init'], { cwd: lab })
  assert.equal(init.status, 0, init.stderr)
  assert.match(fs.readFileSync(path.join(lab, 'record-audio.mts'), 'utf8'), /'-edited\.mp4'/)
})

test('npx record-audio init from an empty folder: a copy to edit; each edit, and a flag, used by the next run', async () => {
  const lab = tempDir('ra-init-')
  const init = run('npx', ['--yes', `--package=${tarball}`, 'record-audio', 'init'], { cwd: lab })
  assert.equal(init.status, 0, init.stderr)
  assert.match(init.stderr, /your copy: edit its settings .* then run: node record-audio\.mts <feed_id>/)
  const copy = path.join(lab, 'record-audio.mts')
  const packed = run('tar', ['xzOf', tarball, 'package/record-audio.mts']).stdout
  assert.equal(fs.readFileSync(copy, 'utf8'), packed, 'the packaged source, verbatim')
  assert.match(run(process.execPath, [copy, '--version'], { cwd: lab }).stdout, /\(a copy made by init\)/)
  for (const suffix of ['-lab-first.mp4', '-lab-second.mp4']) {
    editSuffix(copy, suffix)
    const help = run(process.execPath, [copy, '--help'], { cwd: lab })
    assert.equal(help.status, 0, help.stderr)
    assert.equal(shownSuffix(help.stdout), suffix)
  }
  // A second init keeps the edited copy as it is.
  const again = run('npx', ['--yes', `--package=${tarball}`, 'record-audio', 'init'], { cwd: lab })
  assert.equal(again.status, 2)
  assert.match(again.stderr, /record-audio\.mts is here already \(left as it is\)/)
  assert.match(fs.readFileSync(copy, 'utf8'), /'-lab-second\.mp4'/)

  // A recording with the edited copy: its sync record keeps the edited constant and the flags as used.
  const tool = startTool(['lab-feed', '--format', 'pulse', '--device', pulse.source], {
    cwd: lab,
    env: pulse.env,
    command: [process.execPath, copy],
  })
  await tool.recording(path.join(lab, 'lab-feed-audio.wav'), 30000)
  await sleep(1000)
  tool.ctrlC()
  await tool.exited
  const { settings } = JSON.parse(fs.readFileSync(path.join(lab, 'lab-feed-audio-sync.json'), 'utf8'))
  assert.equal(settings.values['muxed-suffix'], '-lab-second.mp4')
  assert.deepEqual(settings.fromFlags.sort(), ['device', 'feed-id', 'format'])
  assert.equal(settings.values.device, pulse.source)
  assert.equal(settings.script, fs.realpathSync(copy))
  assert.equal(settings.scriptSha256, createHash('sha256').update(fs.readFileSync(copy)).digest('hex'))
})
