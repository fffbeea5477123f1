//go:build pollnetdebug

package null

// debugBuild: the engine poisons freed buffers (engine/debug.go).
const debugBuild = true
