//go:build !pollnetdebug

package null

const debugBuild = false
