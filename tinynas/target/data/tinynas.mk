# Included after TFLM's own Makefile (make -f Makefile -f tinynas.mk): prints what tinynas needs to know and
# builds a chosen subset of the library's objects with the Makefile's own rules and flags.
tinynas_print:
	@echo "TINYNAS_CXXFLAGS=$(CXXFLAGS) $(CORE_OPTIMIZATION_LEVEL)"
	@echo "TINYNAS_CCFLAGS=$(CCFLAGS) $(CORE_OPTIMIZATION_LEVEL)"
	@echo "TINYNAS_INCLUDES=$(INCLUDES)"
	@echo "TINYNAS_LDFLAGS=$(LDFLAGS) $(MICROLITE_LIBS)"
	@echo "TINYNAS_CORE=$(MICROLITE_LIB_OBJS) $(MICROLITE_THIRD_PARTY_OBJS)"
	@echo "TINYNAS_KERNELS=$(MICROLITE_KERNEL_OBJS)"
	@echo "TINYNAS_THIRD_PARTY_KERNELS=$(MICROLITE_THIRD_PARTY_KERNEL_OBJS)"

tinynas_objs: $(TINYNAS_OBJS)
