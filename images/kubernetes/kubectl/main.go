// Command kubectl, built from the k8s.io/kubectl library at the version go.mod
// pins, for networks where the release binary cannot be downloaded (the
// kubernetes image's DOWNLOAD_SOURCE=registries).  It does what the release's
// cmd/kubectl does: the default kubectl command with the client auth plugins.
package main

import (
	_ "k8s.io/client-go/plugin/pkg/client/auth" // exec, OIDC and cloud auth plugins
	"k8s.io/component-base/cli"
	"k8s.io/kubectl/pkg/cmd"
	"k8s.io/kubectl/pkg/cmd/util"
)

func main() {
	if err := cli.RunNoErrOutput(cmd.NewDefaultKubectlCommand()); err != nil {
		util.CheckErr(err)
	}
}
