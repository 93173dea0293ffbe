/* SPDX-License-Identifier: LGPL-2.1-only */
/*
 * The fuzz targets' main() where libFuzzer does not provide one: each file
 * named on the command line goes through LLVMFuzzerTestOneInput once (the
 * seed corpora replay so under the test suite's sanitizers), then the
 * target's fuzz_replay_done() releases what its setup made.  The including
 * file defines FUZZ_NAME and fuzz_replay_done() first.
 */
#pragma once

#ifndef EVPL_FUZZ_LIBFUZZER
#include <stdint.h>
#include <stdio.h>

int
main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        FILE *f = fopen(argv[i], "rb");
        static uint8_t buf[1 << 20];
        size_t n;

        if (!f) {
            perror(argv[i]);
            return 1;
        }
        n = fread(buf, 1, sizeof(buf), f);
        fclose(f);
        LLVMFuzzerTestOneInput(buf, n);
    }
    fuzz_replay_done();
    fprintf(stderr, "%s: %d inputs replayed\n", FUZZ_NAME, argc - 1);
    return 0;
}
#endif
