/* hello: prints a greeting (and the bootargs, if any) and exits pass. */
#include <stdio.h>
#include "rt.h"

int main(uint64_t hartid, const void *fdt)
{
	(void)hartid;
	printf("hello from ftbox guest\n");
	const char *args = fdt_bootargs(fdt);
	if (args && *args)
		printf("bootargs: %s\n", args);
	return 0;
}
